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
# With `models.pain.analysis: mmrm` (the default for `design: randomised` with scheduled visits)
# the model is instead an MMRM: visit as a factor, arm x visit, covariates, the configured residual
# covariance (default unstructured), Kenward-Roger df, as SAS PROC MIXED fits it; its LS-means,
# differences, missing-data patterns and tipping-point table follow this trend model's sections.

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
# ## MMRM: LS-means by visit (when `models.pain.analysis: mmrm`)
# Least-squares means per arm at each scheduled visit (equal weights, as SAS's LSMEANS), with
# their intervals.

# %%
out.figure("lsmeans")

# %%
out.table("lsmeans")

# %% [markdown]
# ## MMRM: each treatment against the comparison arm at every visit

# %%
out.table("differences")

# %% [markdown]
# ## MMRM: missing data
# Patients per arm with each pattern of observed visits (`X` observed, `.` missed, in visit
# order); counts below the disclosure threshold are withheld. The model assumes the missed visits
# are missing at random; the tipping-point table shifts the imputed scores of the active arms
# after dropout by delta and reanalyses (multiple imputation, Rubin's rules).

# %%
out.table("missingness_patterns")

# %%
out.table("tipping_point", digits=3)

# %% [markdown] tags=["researcher-only"]
# ## MMRM: estimated covariance and correlation between visits (researcher view)

# %% tags=["researcher-only"]
out.table("covariance_matrix", digits=3)

# %% tags=["researcher-only"]
out.table("correlation_matrix", digits=3)

# %% [markdown]
# ## Dose-response (when `models.dose_response: true`)
# Change in pain per session of each treatment received, for patients who switch between treatments.

# %%
out.table("dose_response", digits=3)
