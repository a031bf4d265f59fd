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
out.table("percent_change", digits=1)

# %% [markdown]
# ## Against the comparison arm (ratio of changes; 1 = same change)

# %%
out.table("ratio_vs_control", digits=3)

# %% [markdown]
# ## Model details

# %%
out.table("fixed_effects", digits=4)

# %%
out.table("health")
