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
# # 7. Benchmarking: how do the clinics compare?
# Each clinic's pain results are compared with the whole network's, for similar patients (same
# treatment, same pain at the start), so a clinic is not judged on its mix of patients. Clinics
# appear as letters; one clinic can be highlighted as "your clinic".

# %% [markdown] tags=["researcher-only"]
# Each clinic's pain results against the network's, for similar patients: the clinic effects of the
# pain model with a clinic level (shrunken towards the network average, so a small clinic is not
# judged on a few lucky or unlucky patients), and a funnel plot of the change in pain against the
# number of patients, with 95 % and 99.8 % control limits (Spiegelhalter 2005). One clinic can be
# highlighted as "your clinic"; the others appear only as letters. Clinics with fewer patients than
# the disclosure threshold are not shown on their own.

# %% tags=["parameters"]
config: str = "config/demo.yaml"  # the run config (relative to the project root)
run_dir: str = "reports/lab"  # where this run writes
clinic_id: str = ""  # the clinic to highlight; empty: the run config's benchmarking.clinic_id, or none

# %%
from analysis.report.context import open_run
from analysis.report.sections import benchmarking as benchmarking_report

ctx = open_run(config, run_dir, section="07_benchmarking")
out = benchmarking_report.run(ctx, clinic_id=clinic_id)

# %%
out.say()

# %% [markdown]
# ## Clinic effects
# Follow-up pain against similar patients (same treatment, same baseline pain, same week) across the
# network, in points on the 0–10 scale. Below 0 means less pain. Intervals are 95 %; an interval that
# crosses 0 means the data cannot tell this clinic from the network average.

# %%
out.figure("caterpillar")

# %%
out.table("clinic_effects")

# %% [markdown]
# ## Funnel plot
# Each point is a clinic's average change in pain from the first visit to the last visit up to the
# follow-up week, adjusted for its mix of patients. Points inside the dashed (95 %) funnel differ
# from the network average by no more than chance would explain; below the funnel means more relief.

# %%
out.figure("funnel")

# %%
out.table("funnel")

# %% [markdown] tags=["researcher-only"]
# ## Model details (researcher view)

# %% tags=["researcher-only"]
out.say_details()

# %% [markdown] tags=["researcher-only"]
# Fit health
# Fit health of the pain model with a clinic level.

# %% tags=["researcher-only"]
out.table("health")
