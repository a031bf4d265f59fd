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
# # 4. Knee-pain episodes: fewer flare-ups?
# Episodes are counts over a known number of days, so rates are compared with a log(exposure days)
# offset. Two estimands are reported side by side: **patient-level** (a negative-binomial mixed
# model, "for a given patient") and **population-averaged** (GEE with robust standard errors, "across
# the clinic's patients"). The run config says which one is primary.

# %% tags=["parameters"]
config: str = "config/demo.yaml"  # the run config (relative to the project root)
run_dir: str = "reports/lab"  # where this run writes

# %%
from analysis.report.context import open_run
from analysis.report.sections import episodes as episodes_report

ctx = open_run(config, run_dir, section="04_episodes")
out = episodes_report.run(ctx)

# %%
out.say()

# %% [markdown]
# ## Rate ratios against the comparison arm

# %%
out.figure("forest")

# %%
out.table("rate_ratios", digits=3)

# %% [markdown]
# ## Fit health

# %%
out.table("health")
