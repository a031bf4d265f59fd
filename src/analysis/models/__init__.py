"""Models: generic statistical engines, each matched against a reference implementation.

Owns linear mixed models (REML/ML, the pls engine, Satterthwaite df, marginal means and contrasts,
formula checks, fit health and the fallback chain) and the count models (GEE and Laplace GLMM,
Poisson and NB2). Nothing here knows about pain, clinics, claims or the run config: a model takes a
data frame and a formula or design and returns tidy tables. May import only ``analysis.errors``;
must not import intake, endpoints, audit, report, run or studies.
"""
