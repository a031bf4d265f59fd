# Reference numbers for issue 12 (real exports by mapping alone): the pain model fitted on the
# long table that config/examples/fev_labelled_visits.yaml makes from mmrm's fev_data.csv.
# Usage: Rscript tests/reference/r_mapping_lmm.R tests/reference
# Reads mmrm/fev_data.csv (R write.csv: missing FEV1 is "NA"), maps the visit labels VIS1..VIS4 to
# months 1..4 and months to weeks (30.4375 / 7, docs/data-contract.md section 7), drops rows with
# a missing FEV1 (as the pain model does), fits lme4 + lmerTest (REML, Satterthwaite df) and
# writes r_mapping_lmm.json. Made on R 4.2.2 (Debian), lme4 1.1-31, lmerTest 3.1-3.
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
dir <- commandArgs(TRUE)[1]
d <- read.csv(file.path(dir, "mmrm", "fev_data.csv"))  # "NA" -> NA by read.csv's default
months <- c(VIS1 = 1, VIS2 = 2, VIS3 = 3, VIS4 = 4)
d$week <- unname(months[d$AVISIT]) * 30.4375 / 7
d$arm <- factor(d$ARMCD, levels = c("PBO", "TRT"))
d$RACE <- factor(d$RACE)
d <- d[!is.na(d$FEV1), ]
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
vc <- function(m) { v <- as.data.frame(VarCorr(m)); setNames(as.list(v$sdcor), paste(v$grp, v$var1, v$var2, sep = ":")) }
fe <- function(m) { s <- summary(m, ddf = "Satterthwaite")$coefficients
  lapply(setNames(seq_len(nrow(s)), rownames(s)), function(i) as.list(s[i, ])) }
block <- function(m, formula) list(formula = formula, n_obs = nobs(m), REMLcrit = REMLcrit(m),
  sigma = sigma(m), sdcor = vc(m), fixef_satterthwaite = fe(m),
  converged = is.null(m@optinfo$conv$lme4$messages))
out <- list(generated_by = paste("R", getRversion(), "lme4", packageVersion("lme4"),
  "lmerTest", packageVersion("lmerTest")))
f1 <- "FEV1 ~ week * arm + FEV1_BL + RACE + (1 | USUBJID)"
out$fev_intercept_reml <- block(lmer(as.formula(f1), d, REML = TRUE, control = ctl), f1)
f2 <- "FEV1 ~ week * arm + FEV1_BL + RACE + (1 + week | USUBJID)"
out$fev_slope_reml <- block(lmer(as.formula(f2), d, REML = TRUE, control = ctl), f2)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), file.path(dir, "r_mapping_lmm.json"))
