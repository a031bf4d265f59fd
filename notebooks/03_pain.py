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
# # 3. Pain: did the treatments ease it?
# A linear mixed model (REML) follows each patient's pain over the weeks: `pain_score ~ week * arm`
# with a random intercept and slope per patient, the model lme4 would fit. Differences against the
# comparison arm come with Satterthwaite degrees of freedom, as lmerTest gives them.

# %% tags=["parameters"]
config: str = "config/demo.yaml"  # the run config (relative to the project root)
run_dir: str = "reports/lab"  # where this run writes

# %%
from analysis.report.context import open_run
from analysis.report.sections import pain as pain_report

ctx = open_run(config, run_dir, section="03_pain")
out = pain_report.run(ctx)

# %%
out.say()

# %% [markdown]
# ## Pain predicted by the model, by treatment

# %%
out.figure("marginal_means")

# %% [markdown]
# ## Each treatment against the comparison arm, week by week
# Negative numbers mean less pain than the comparison arm.

# %%
out.table("contrasts")

# %% [markdown]
# ## Weekly change in pain against the comparison arm

# %%
out.table("slope_differences", digits=3)

# %% [markdown]
# ## Model details
# Fixed effects (Satterthwaite df), variance components (SD and correlation, as lme4's `VarCorr`)
# and fit health.

# %%
out.table("fixed_effects", digits=3)

# %%
out.table("variance_components", digits=3)

# %%
out.table("health")

# %% [markdown] tags=["researcher-only"]
# ## Diagnostics (researcher view)
# Residuals against fitted values, a normal QQ plot and the patients' random effects.

# %% tags=["researcher-only"]
out.figure("diagnostics")

# %% [markdown]
# ## Dose-response (when `models.dose_response: true`)
# Change in pain per session of each treatment received, for patients who switch between treatments.

# %%
out.table("dose_response", digits=3)
