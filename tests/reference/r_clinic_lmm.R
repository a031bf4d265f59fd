# Reference numbers for analysis.models.lmm / marginal / pain / strength / moderator beyond sleepstudy:
# a simulated clinic log (patients nested in clinics, 4 arms), fitted with lme4 + lmerTest and
# summarised with emmeans (Satterthwaite df, no multiplicity adjustment).
# Usage: Rscript tests/reference/r_clinic_lmm.R tests/reference
# Writes r_clinic_lmm.csv (the data, then re-read so R fits exactly what Python reads) and
# r_clinic_lmm.json. Made on R 4.2.2 (Debian), lme4 1.1-31, lmerTest 3.1-3, emmeans 1.8.4.
suppressMessages({library(lme4); library(lmerTest); library(emmeans); library(jsonlite)})
dir <- commandArgs(TRUE)[1]
set.seed(20261121)
n_pat <- 80; n_cl <- 6
arms <- c("usual_care", "orthotics", "foot_massage", "strength_training")
pat <- data.frame(patient_id = sprintf("P%03d", 1:n_pat),
                  clinic_id = sprintf("C%d", sample(1:n_cl, n_pat, replace = TRUE)),
                  arm = rep(arms, length.out = n_pat),
                  sex = sample(c("F", "M"), n_pat, replace = TRUE),
                  foot_posture_index = pmin(12, pmax(-12, round(rnorm(n_pat, 4, 3)))))
clinic_eff <- setNames(rnorm(n_cl, 0, 0.6), sprintf("C%d", 1:n_cl))
slope <- c(usual_care = -0.08, orthotics = -0.15, foot_massage = -0.12, strength_training = -0.20)
gain <- c(usual_care = 0.002, orthotics = 0.004, foot_massage = 0.003, strength_training = 0.025)
weeks <- c(0, 2, 4, 6, 8, 10, 12)
rows <- list()
for (i in seq_len(n_pat)) {
  p <- pat[i, ]
  u0 <- rnorm(1, 0, 1); u1 <- rnorm(1, 0, 0.06); v <- rnorm(1, 0, 0.25)
  w <- weeks[c(TRUE, runif(length(weeks) - 1) > 0.15)]
  over <- p$foot_posture_index > 5
  pain <- 6 + clinic_eff[[p$clinic_id]] + u0 + 0.3 * (p$sex == "M") +
    (slope[[p$arm]] - 0.10 * over * (p$arm == "orthotics") + u1) * w + rnorm(length(w), 0, 0.8)
  strength <- exp(log(250) + v + gain[[p$arm]] * w + rnorm(length(w), 0, 0.08))
  rows[[i]] <- data.frame(patient_id = p$patient_id, clinic_id = p$clinic_id, week = w,
                          arm = p$arm, sex = p$sex, foot_posture_index = p$foot_posture_index,
                          pain_score = round(pain, 2), strength = round(strength, 1))
}
d <- do.call(rbind, rows)
write.csv(d, file.path(dir, "r_clinic_lmm.csv"), row.names = FALSE)
d <- read.csv(file.path(dir, "r_clinic_lmm.csv"))
d$arm <- factor(d$arm, levels = arms)
d$overpronated <- factor(as.integer(d$foot_posture_index > 5))
# minqa's bobyqa reaches tighter optima than lme4's default nloptwrap (which stops with
# max|grad| = 0.012 on the moderator model)
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))

vc <- function(m) { v <- as.data.frame(VarCorr(m)); setNames(as.list(v$sdcor), paste(v$grp, v$var1, v$var2, sep = ":")) }
conv <- function(m) { msg <- m@optinfo$conv$lme4$messages; if (is.null(msg)) "none" else msg }
fe <- function(m) { s <- summary(m, ddf = "Satterthwaite")$coefficients
  lapply(setNames(seq_len(nrow(s)), rownames(s)), function(i) as.list(s[i, ])) }
tab <- function(x) { s <- as.data.frame(summary(x, infer = TRUE, adjust = "none")); s }
weeks_at <- list(week = c(0, 4, 8, 12))
emm_block <- function(m) {
  em <- emmeans(m, ~ arm | week, at = weeks_at, lmer.df = "satterthwaite")
  et <- emtrends(m, ~ arm, var = "week", lmer.df = "satterthwaite")
  list(emmeans = tab(em), contrasts = tab(contrast(em, "trt.vs.ctrl", ref = 1)),
       trends = tab(et), trend_contrasts = tab(contrast(et, "trt.vs.ctrl", ref = 1)))
}
out <- list(generated_by = paste("R", getRversion(), "lme4", packageVersion("lme4"),
  "lmerTest", packageVersion("lmerTest"), "emmeans", packageVersion("emmeans")))

m1 <- lmer(pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id), d, REML = TRUE, control = ctl)
out$clinic_slope_reml <- c(list(formula = "pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id)",
  REMLcrit = REMLcrit(m1), sigma = sigma(m1), sdcor = vc(m1), fixef_satterthwaite = fe(m1),
  isSingular = isSingular(m1), lme4_messages = conv(m1)), emm_block(m1))

m2 <- lmer(pain_score ~ week * arm + foot_posture_index + sex + (1 + week | patient_id), d, REML = TRUE, control = ctl)
out$covariates_slope_reml <- c(list(formula = "pain_score ~ week * arm + foot_posture_index + sex + (1 + week | patient_id)",
  REMLcrit = REMLcrit(m2), sdcor = vc(m2), fixef_satterthwaite = fe(m2), lme4_messages = conv(m2)),
  emm_block(m2))

m3 <- lmer(pain_score ~ week * arm * overpronated + (1 + week | patient_id), d, REML = TRUE, control = ctl)
et3 <- emtrends(m3, ~ overpronated | arm, var = "week", lmer.df = "satterthwaite")
out$moderator_slope_reml <- list(formula = "pain_score ~ week * arm * overpronated + (1 + week | patient_id)",
  REMLcrit = REMLcrit(m3), sdcor = vc(m3), fixef_satterthwaite = fe(m3), lme4_messages = conv(m3),
  trend_by_foot = tab(contrast(et3, "revpairwise")),
  n_overpronated_patients = as.list(tapply(d$overpronated[!duplicated(d$patient_id)] == "1",
                                           d$arm[!duplicated(d$patient_id)], sum)))

m4 <- lmer(log(strength) ~ week * arm + (1 | patient_id), d, REML = TRUE, control = ctl)
out$strength_log_intercept_reml <- c(list(formula = "log(strength) ~ week * arm + (1 | patient_id)",
  REMLcrit = REMLcrit(m4), sdcor = vc(m4), fixef_satterthwaite = fe(m4), lme4_messages = conv(m4)),
  emm_block(m4))

writeLines(toJSON(out, auto_unbox = TRUE, digits = 10, pretty = TRUE, dataframe = "rows"),
           file.path(dir, "r_clinic_lmm.json"))
