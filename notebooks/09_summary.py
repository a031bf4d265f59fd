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
# # 9. Summary: what a clinic owner must know
# The findings of the earlier pages in plain words. Each sentence rests on a 95 % interval: "clearly
# better" means the interval leaves out "no difference".

# %% tags=["parameters"]
config: str = "config/demo.yaml"  # the run config (relative to the project root)
run_dir: str = "reports/lab"  # where this run writes

# %%
from analysis.report.context import open_run
from analysis.report.sections import summary as summary_report

ctx = open_run(config, run_dir, section="09_summary")
out = summary_report.run(ctx)

# %%
out.say()

# %% [markdown]
# ## What was not analysed, and why

# %%
out.table("not_analysed")
