# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. What came in
# Before anything else, the clinic's records are checked: every visit row must make sense, and no
# row may identify a patient. This page says what was read, what was used, and which groups of
# patients are too small to show.

# %% [markdown] tags=["researcher-only"]
# The log is checked against the data contract (`docs/data-contract.md`) and the anonymity guard.

# %% tags=["parameters"]
config: str = "config/demo.yaml"  # the run config (relative to the project root)
run_dir: str = "reports/lab"  # where this run writes

# %%
from analysis.report.context import open_run
from analysis.report.sections import intake

ctx = open_run(config, run_dir, section="01_validate")
out = intake.run(ctx)

# %%
out.say()

# %% [markdown]
# ## Patients in each treatment group

# %%
out.figure("arms")

# %% [markdown]
# ## The log in numbers

# %%
out.table("intake")

# %% [markdown]
# ## Treatment arms

# %%
out.table("arms")

# %% [markdown] tags=["researcher-only"]
# ## Columns used, dropped and ignored

# %% tags=["researcher-only"]
out.table("columns")

# %% [markdown] tags=["researcher-only"]
# ## k-anonymity over age band, sex and clinic
# Groups with fewer patients than the disclosure threshold are withheld.

# %% tags=["researcher-only"]
out.table("k_anonymity")
