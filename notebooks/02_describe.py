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
# # 2. Who was treated and what happened
# How many patients started, came back and stayed in each treatment group, what they were like at
# their first visit, and how their pain changed — raw averages, before any model.

# %% tags=["parameters"]
config: str = "config/demo.yaml"  # the run config (relative to the project root)
run_dir: str = "reports/lab"  # where this run writes

# %%
from analysis.report.context import open_run
from analysis.report.sections import description

ctx = open_run(config, run_dir, section="02_describe")
out = description.run(ctx)

# %%
out.say()

# %% [markdown]
# ## Pain over time

# %%
out.figure("pain_trajectories")

# %% [markdown]
# ## How many patients started, came back and stayed

# %%
out.table("flow_wide")

# %% [markdown]
# ## What patients were like at their first visit

# %%
out.table("baseline_wide")

# %% [markdown]
# ## How often each measure was not recorded

# %%
out.table("missing_wide")

# %% [markdown] tags=["researcher-only"]
# ## Patient flow (CONSORT-style), baseline and missingness, long form

# %% tags=["researcher-only"]
out.table("flow", digits=0)

# %% tags=["researcher-only"]
out.table("baseline")

# %% tags=["researcher-only"]
out.table("missingness", digits=1)

# %% [markdown] tags=["researcher-only"]
# ## Pain by week and treatment

# %% tags=["researcher-only"]
out.table("pain_trajectories")
