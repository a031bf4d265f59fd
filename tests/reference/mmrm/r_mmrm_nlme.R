# Second reference for the MMRM engine: nlme::gls with an unstructured covariance
# (corSymm + varIdent) fitted by REML to fev_data.csv, LS-means with emmeans, and the
# sandwich (CR0) and bias-reduced (CR2) covariances with clubSandwich.
#
# Run from the repository root:  Rscript tests/reference/mmrm/r_mmrm_nlme.R tests/reference/mmrm
# Writes r_mmrm_nlme.json next to this script. Tests read only that JSON (CI needs no R).
suppressPackageStartupMessages({
  library(nlme); library(emmeans); library(jsonlite); library(clubSandwich)
})
args <- commandArgs(trailingOnly = TRUE)
out_dir <- if (length(args)) args[1] else "."
fev <- read.csv(file.path(out_dir, "fev_data.csv"), stringsAsFactors = FALSE)
fev$ARMCD <- factor(fev$ARMCD, levels = c("PBO", "TRT"))
fev$AVISIT <- factor(fev$AVISIT, levels = c("VIS1", "VIS2", "VIS3", "VIS4"))
fev$RACE <- factor(fev$RACE, levels = c("Asian", "Black or African American", "White"))
fev$SEX <- factor(fev$SEX, levels = c("Male", "Female"))
fev$USUBJID <- factor(fev$USUBJID)
fev <- fev[!is.na(fev$FEV1), ]

ctrl <- glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-12)
fit <- gls(FEV1 ~ ARMCD * AVISIT + RACE + SEX, data = fev,
           correlation = corSymm(form = ~ VISITN | USUBJID),
           weights = varIdent(form = ~ 1 | AVISIT), method = "REML",
           na.action = na.omit, control = ctrl)

# The covariance matrix of a subject observed at all four visits (rows/cols VIS1..VIS4).
full <- names(which(table(fev$USUBJID) == 4))[1]
sigma <- unclass(getVarCov(fit, individual = full))

X <- model.matrix(FEV1 ~ ARMCD * AVISIT + RACE + SEX, data = fev)
emm_eq <- emmeans(fit, ~ ARMCD | AVISIT, mode = "satterthwaite")
# Proportional (SAS OM) weights: observed frequencies of the RACE x SEX combinations among the
# fitted rows. emmeans' own weights = "proportional" is not used: for a gls with varIdent it
# counts the variance weights as case weights (non-integer .wgt.), which is not SAS's OM.
w_obs <- as.vector(table(fev$RACE, fev$SEX))   # RACE varies fastest, as in the reference grid
emm_pr <- emmeans(fit, ~ ARMCD | AVISIT, mode = "satterthwaite", weights = w_obs)
tab <- function(x) {
  d <- as.data.frame(summary(x, infer = c(TRUE, TRUE)))
  names(d)[names(d) %in% c("emmean", "estimate")] <- "estimate"
  d[] <- lapply(d, function(v) if (is.factor(v)) as.character(v) else v)
  d
}
diff_eq <- contrast(emm_eq, method = "trt.vs.ctrl", ref = 1)

vc_cr0 <- as.matrix(vcovCR(fit, cluster = fev$USUBJID, type = "CR0"))
vc_cr2 <- as.matrix(vcovCR(fit, cluster = fev$USUBJID, type = "CR2"))

out <- list(
  source = "nlme::gls(FEV1 ~ ARMCD * AVISIT + RACE + SEX, correlation = corSymm(form = ~ VISITN | USUBJID), weights = varIdent(form = ~ 1 | AVISIT), method = 'REML')",
  versions = list(R = R.version.string, nlme = as.character(packageVersion("nlme")),
                  emmeans = as.character(packageVersion("emmeans")),
                  clubSandwich = as.character(packageVersion("clubSandwich"))),
  n_obs = nrow(fev),
  coef_names = names(coef(fit)),
  coef = unname(coef(fit)),
  vcov = unname(as.matrix(vcov(fit))),
  logLik_reml = as.numeric(logLik(fit)),
  logdet_XtX = as.numeric(determinant(crossprod(X), logarithm = TRUE)$modulus),
  sigma_visits = levels(fev$AVISIT),
  sigma = unname(sigma),
  lsmeans_equal = tab(emm_eq),
  lsmeans_proportional = tab(emm_pr),
  lsmeans_proportional_linfct = unname(emm_pr@linfct),
  diff_equal = tab(diff_eq),
  vcov_cr0 = unname(vc_cr0),
  vcov_cr2 = unname(vc_cr2)
)
write_json(out, file.path(out_dir, "r_mmrm_nlme.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", file.path(out_dir, "r_mmrm_nlme.json"), "\n")
