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
# # 8. Do the claims hold up?
# Each published claim is checked against what the clinic's own records show, and given a verdict:
# **supported** (the data show an effect as big as claimed),
# **overstated** (a real effect, but smaller than claimed),
# **inconclusive** (the data cannot tell the claim from no effect),
# **contradicted** (the data point the other way, or to no effect),
# **not testable** (the records lack the treatment, the comparison or the outcome, or too few patients).

# %% [markdown] tags=["researcher-only"]
# Each claim from the claims file (`claims:` in the run config; see `docs/claims.md`) is compiled to
# an explicit estimand — which model, which comparison, which scale, which weeks — and graded on the
# 95 % interval of the primary estimand:
# **supported** (the interval rules out no effect and reaches the claimed value),
# **overstated** (a real effect, but smaller than claimed),
# **inconclusive** (the data cannot tell the claim from no effect),
# **contradicted** (the data rule out the claimed value and point to no effect or the other way),
# **not testable** (the data lack the arm, the comparison or the outcome, or too few patients).

# %% tags=["parameters"]
config: str = "config/demo.yaml"  # the run config (relative to the project root)
run_dir: str = "reports/lab"  # where this run writes

# %%
from analysis.report.context import open_run
from analysis.report.sections import claims as claims_report

ctx = open_run(config, run_dir, section="08_claims")
out = claims_report.run(ctx)

# %%
out.say()

# %% [markdown]
# ## Each claim against the data
# Values are positive in the claimed direction (e.g. percent fewer episodes).

# %%
out.figure("forest")

# %%
out.table("plain", digits=1)

# %% [markdown] tags=["researcher-only"]
# ## The analysis each verdict rests on

# %% tags=["researcher-only"]
out.say_details()

# %% tags=["researcher-only"]
out.table("verdicts")

# %% [markdown] tags=["researcher-only"]
# ## Caveats: estimands, uncontrolled before/after claims, the other estimand
# A before/after claim is graded against the comparison arm, because pain and strength also change
# without treatment (regression to the mean, natural course); `share_of_change_in_control` says how
# much of the before/after change the comparison arm shows too. Holm-adjusted p-values (`p_holm`)
# account for checking several claims at once; `mde` is the smallest effect these data could detect
# with 80 % power, and `n_needed_per_arm` the patients per arm needed to test the claimed value.

# %% tags=["researcher-only"]
out.table("details")
