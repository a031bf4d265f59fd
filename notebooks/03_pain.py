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
# # 3. The main outcome: did the treatments improve it?
# Each patient's outcome (pain, unless the run config names another: its name is on every figure
# and sentence below) is followed over time, and each treatment is compared with the comparison
# group at the same time. The lines show what the model expects for a typical patient;
# the bands show how sure we are (95 % intervals).

# %% [markdown] tags=["researcher-only"]
# A mixed model follows each patient's pain over time and compares each treatment with the
# comparison arm. Which model was fitted — its formula, random structure, engine, degrees of freedom
# and any fallback — is said in the findings below ("Model fitted: …"), read from the fit itself,
# because the run config (and the fit-health fallbacks) decide it, not this page.

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

# %% [markdown] tags=["researcher-only"]
# With `models.pain.analysis: mmrm` (the default for `design: randomised` with scheduled visits)
# the model is instead an MMRM: visit as a factor, arm x visit, covariates, the configured residual
# covariance (default unstructured), Kenward-Roger df, as SAS PROC MIXED fits it; its LS-means,
# differences, missing-data patterns and tipping-point table follow this trend model's sections.

# %% [markdown]
# ## The outcome over time, each treatment against the comparison group

# %%
out.figure("marginal_means")

# %% [markdown]
# ## Difference against the comparison group, visit by visit
# Below zero: lower than in the comparison group (for pain, less pain).

# %%
out.table("by_week", digits=1)

# %% [markdown] tags=["researcher-only"]
# ## The model fitted

# %% tags=["researcher-only"]
out.say_details()

# %% [markdown] tags=["researcher-only"]
# ## Contrasts against the comparison arm

# %% tags=["researcher-only"]
out.table("contrasts")

# %% [markdown] tags=["researcher-only"]
# ## Change per week against the comparison arm

# %% tags=["researcher-only"]
out.table("slope_differences", digits=3)

# %% [markdown] tags=["researcher-only"]
# ## Model details
# Fixed effects (Satterthwaite df), variance components (SD and correlation, as lme4's `VarCorr`)
# and fit health.

# %% tags=["researcher-only"]
out.table("fixed_effects", digits=3)

# %% tags=["researcher-only"]
out.table("variance_components", digits=3)

# %% tags=["researcher-only"]
out.table("health")

# %% [markdown] tags=["researcher-only"]
# ## Diagnostics (researcher view)
# Residuals against fitted values, a normal QQ plot and the patients' random effects.

# %% tags=["researcher-only"]
out.figure("diagnostics")

# %% [markdown] tags=["researcher-only"]
# ## MMRM: LS-means by visit (when `models.pain.analysis: mmrm`)
# Least-squares means per arm at each scheduled visit (equal weights, as SAS's LSMEANS), with
# their intervals.

# %% tags=["researcher-only"]
out.figure("lsmeans")

# %% tags=["researcher-only"]
out.table("lsmeans")

# %% [markdown] tags=["researcher-only"]
# ## MMRM: each treatment against the comparison arm at every visit

# %% tags=["researcher-only"]
out.table("differences")

# %% [markdown] tags=["researcher-only"]
# ## MMRM: missing data
# Patients per arm with each pattern of observed visits (`X` observed, `.` missed, in visit
# order); counts below the disclosure threshold are withheld. The model assumes the missed visits
# are missing at random; the tipping-point table shifts the imputed scores of the active arms
# after dropout by delta and reanalyses (multiple imputation, Rubin's rules).

# %% tags=["researcher-only"]
out.table("missingness_patterns")

# %% tags=["researcher-only"]
out.table("tipping_point", digits=3)

# %% [markdown] tags=["researcher-only"]
# ## MMRM: estimated covariance and correlation between visits (researcher view)

# %% tags=["researcher-only"]
out.table("covariance_matrix", digits=3)

# %% tags=["researcher-only"]
out.table("correlation_matrix", digits=3)

# %% [markdown] tags=["researcher-only"]
# ## Dose-response (when `models.dose_response: true`)
# Change in the outcome per session of each treatment received, for patients who switch between treatments.

# %% tags=["researcher-only"]
out.table("dose_response", digits=3)
