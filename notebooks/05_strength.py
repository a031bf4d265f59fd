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
# # 5. Strength: how much stronger?
# Lower-limb strength is measured at visits; the change over the follow-up is shown in percent, for
# each treatment and against the comparison group.

# %% [markdown] tags=["researcher-only"]
# Strength changes are relative, so the model works on log(strength) and reports percent change
# over the follow-up, per treatment and as a ratio against the comparison arm.

# %% tags=["parameters"]
config: str = "config/demo.yaml"  # the run config (relative to the project root)
run_dir: str = "reports/lab"  # where this run writes

# %%
from analysis.report.context import open_run
from analysis.report.sections import strength as strength_report

ctx = open_run(config, run_dir, section="05_strength")
out = strength_report.run(ctx)

# %%
out.say()

# %% [markdown]
# ## Percent change per treatment

# %%
out.figure("percent_change")

# %%
out.table("change", digits=0)

# %% [markdown] tags=["researcher-only"]
# ## Percent change per treatment, against the comparison arm (ratio of changes; 1 = same change)

# %% tags=["researcher-only"]
out.table("percent_change", digits=1)

# %% tags=["researcher-only"]
out.table("ratio_vs_control", digits=3)

# %% [markdown] tags=["researcher-only"]
# ## Model details

# %% tags=["researcher-only"]
out.table("fixed_effects", digits=4)

# %% tags=["researcher-only"]
out.table("health")
