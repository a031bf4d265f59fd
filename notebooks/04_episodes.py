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
# # 4. Episodes: fewer flare-ups?
# Episodes (of knee pain, unless the run config names another count: its name is on every figure
# and sentence below) are counted between visits and compared per day of follow-up, so patients
# followed for longer are not counted as having more episodes.

# %% [markdown] tags=["researcher-only"]
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
# ## Episodes with each treatment, compared with the comparison group

# %%
out.figure("forest")

# %%
out.table("fewer_episodes", digits=0)

# %% [markdown] tags=["researcher-only"]
# ## Rate ratios, both estimands, and fit health

# %% tags=["researcher-only"]
out.say_details()

# %% tags=["researcher-only"]
out.table("rate_ratios", digits=3)

# %% tags=["researcher-only"]
out.table("health")
