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
# # 6. Who got relief they would notice, and do flat feet matter?
# A patient counts as feeling a difference when their pain fell by at least 2 points, or by 30 %,
# from their first visit: the change patients themselves describe as worthwhile (Farrar et al. 2001).

# %% [markdown] tags=["researcher-only"]
# A **responder** has at least 2 points or 30 % less pain than at their first visit by the chosen
# week (Farrar et al. 2001). **Foot-posture moderation** asks whether a treatment's weekly change in
# pain differs for overpronated feet (Foot Posture Index above +5) — the clinic pages' story.

# %% tags=["parameters"]
config: str = "config/demo.yaml"  # the run config (relative to the project root)
run_dir: str = "reports/lab"  # where this run writes

# %%
from analysis.report.context import open_run
from analysis.report.sections import responders as responders_report

ctx = open_run(config, run_dir, section="06_responders")
out = responders_report.run(ctx)

# %%
out.say()

# %% [markdown]
# ## Patients with noticeable relief, per treatment

# %%
out.figure("responders")

# %%
out.table("shares", digits=0)

# %% [markdown] tags=["researcher-only"]
# ## Responder proportions and differences

# %% tags=["researcher-only"]
out.table("proportions", digits=3)

# %% tags=["researcher-only"]
out.table("differences", digits=3)

# %% [markdown] tags=["researcher-only"]
# ## Foot-posture moderation
# Slope difference, overpronated minus other feet, per treatment (points of pain per week).

# %% tags=["researcher-only"]
out.table("moderator_by_foot", digits=3)

# %% [markdown] tags=["researcher-only"]
# The same difference against the comparison arm's.

# %% tags=["researcher-only"]
out.table("moderator_vs_control", digits=3)

# %% tags=["researcher-only"]
out.table("moderator_health")
