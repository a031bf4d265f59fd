# Reference numbers for analysis.endpoints.benchmarking: clinic conditional modes with their conditional SDs
# (lme4's condVar, and the prediction-error SD that also carries the uncertainty in beta), and the
# funnel-plot quantities of Spiegelhalter (2005, Stat Med 24:1185) computed by hand in R.
# Data: tests/reference/r_clinic_lmm.csv (made by r_clinic_lmm.R; 80 patients in 6 clinics). Its
# clinic effects shift pain at every visit, baseline included, so a baseline-adjusted model finds
# none; r_benchmarking.csv adds a fixed post-baseline shift per clinic (clinics that ease pain
# more or less than others) and is re-read, so R fits exactly what Python reads.
# Usage: Rscript tests/reference/r_benchmarking.R tests/reference
# Writes r_benchmarking.csv and r_benchmarking.json. Made on R 4.2.2 (Debian), lme4 1.1-31.
suppressMessages({library(lme4); library(jsonlite)})
dir <- commandArgs(TRUE)[1]
d <- read.csv(file.path(dir, "r_clinic_lmm.csv"))
d$arm <- factor(d$arm, levels = c("usual_care", "orthotics", "foot_massage", "strength_training"))
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))

# Var(u - u_hat) in lme4's spherical parametrisation b = Lambda u, from Henderson's mixed-model
# equations C = [X'X, X'U; U'X, U'U + I], U = Z Lambda: sigma^2 C^{-1} (beta estimated, so its
# uncertainty is included); sigma^2 (U'U + I)^{-1} holds beta fixed at its estimate.
clinic_block <- function(m) {
  X <- getME(m, "X"); Lt <- getME(m, "Lambdat"); U <- t(Lt %*% getME(m, "Zt"))
  p <- ncol(X); Q <- ncol(U)
  UU <- as.matrix(crossprod(U)) + diag(Q)
  C <- rbind(cbind(crossprod(X), as.matrix(crossprod(X, U))), cbind(as.matrix(crossprod(U, X)), UU))
  s2 <- sigma(m)^2
  V_pev <- s2 * as.matrix(t(Lt) %*% solve(C)[p + seq_len(Q), p + seq_len(Q)] %*% Lt)
  V_fix <- s2 * as.matrix(t(Lt) %*% solve(UU) %*% Lt)
  Gp <- getME(m, "Gp"); i <- which(names(getME(m, "cnms")) == "clinic_id")
  idx <- (Gp[i] + 1):Gp[i + 1]
  re <- ranef(m, condVar = TRUE)$clinic_id
  list(level = rownames(re), mode = re[, "(Intercept)"],
       condsd_lme4 = sqrt(attr(re, "postVar")[1, 1, ]),
       condsd_beta_fixed = sqrt(diag(V_fix)[idx]), pev_sd = sqrt(diag(V_pev)[idx]),
       sigma = sigma(m), clinic_sd = as.data.frame(VarCorr(m))$sdcor[
         as.data.frame(VarCorr(m))$grp == "clinic_id"], REMLcrit = REMLcrit(m))
}
out <- list(generated_by = paste("R", getRversion(), "lme4", packageVersion("lme4")))

m1 <- lmer(pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id), d,
           REML = TRUE, control = ctl)
out$clinic_slope_reml <- c(list(formula = "pain_score ~ week * arm + (1 | clinic_id) + (1 + week | clinic_id:patient_id)"),
                           clinic_block(m1))

shift <- c(C1 = -0.5, C2 = 0.3, C3 = -0.2, C4 = 0, C5 = 0.6, C6 = -0.3)
d$pain_score <- round(d$pain_score + shift[d$clinic_id] * (d$week > 0), 2)
write.csv(d[, c("patient_id", "clinic_id", "week", "arm", "pain_score")],
          file.path(dir, "r_benchmarking.csv"), row.names = FALSE)
d <- read.csv(file.path(dir, "r_benchmarking.csv"))
d$arm <- factor(d$arm, levels = c("usual_care", "orthotics", "foot_massage", "strength_training"))

# The benchmarking model: baseline pain (the first recorded score, at week <= 1) as a covariate,
# the baseline visit out of the response.
d <- d[order(d$patient_id, d$week), ]
rec <- d[!is.na(d$pain_score), ]
first <- rec[!duplicated(rec$patient_id), ]
first <- first[first$week <= 1, ]
d2 <- merge(d, data.frame(patient_id = first$patient_id, baseline_pain_score = first$pain_score,
                          base_week = first$week), by = "patient_id")
d2 <- d2[!(d2$week == d2$base_week), ]
m2 <- lmer(pain_score ~ week * arm + baseline_pain_score + (1 | clinic_id) + (1 + week | clinic_id:patient_id),
           d2, REML = TRUE, control = ctl)
out$clinic_baseline_reml <- c(list(data = "r_benchmarking.csv", formula = "pain_score ~ week * arm + baseline_pain_score + (1 | clinic_id) + (1 + week | clinic_id:patient_id)",
                                   n_obs = nrow(d2)), clinic_block(m2))

# Funnel plot (Spiegelhalter 2005): change = last recorded score at 4 <= week <= 12 minus the
# baseline score; expected change from lm(change ~ arm [+ baseline]); a clinic's adjusted change
# = overall mean change + mean residual of its patients; s = sigma / sqrt(n).
funnel <- function(formula, horizon = 12, min_fu = 4, winsor = 0.1) {
  fu <- rec[rec$week >= min_fu & rec$week <= horizon, ]
  last <- fu[!duplicated(fu$patient_id, fromLast = TRUE), ]
  p <- merge(data.frame(patient_id = first$patient_id, clinic_id = first$clinic_id, arm = first$arm,
                        baseline = first$pain_score),
             data.frame(patient_id = last$patient_id, last = last$pain_score), by = "patient_id")
  p$change <- p$last - p$baseline
  fit <- lm(formula, p)
  sigma <- summary(fit)$sigma
  theta0 <- mean(p$change)
  p$resid <- residuals(fit)
  cl <- sort(unique(p$clinic_id))
  n <- as.numeric(table(p$clinic_id)[cl])
  y <- theta0 + as.numeric(tapply(p$resid, p$clinic_id, mean)[cl])
  s <- sigma / sqrt(n)
  z <- (y - theta0) / s
  q <- quantile(z, c(winsor, 1 - winsor), type = 7)
  zw <- pmin(pmax(z, q[1]), q[2])
  I <- length(z)
  phi <- mean(zw^2)
  w <- 1 / s^2
  tau2 <- max(0, (I * phi - (I - 1)) / (sum(w) - sum(w^2) / sum(w)))
  z95 <- qnorm(0.975); z998 <- qnorm(0.999)
  list(data = "r_benchmarking.csv", formula = deparse(formula), n_patients_total = nrow(p), target = theta0, sigma = sigma,
       clinic = cl, n = n, adjusted_change = y, z = z, phi = phi, tau2 = tau2,
       overdispersion_chisq = I * phi, overdispersion_df = I - 1,
       overdispersion_p = pchisq(I * phi, I - 1, lower.tail = FALSE),
       z95 = z95, z998 = z998,
       upper95_none = theta0 + z95 * s, lower998_none = theta0 - z998 * s,
       upper95_multiplicative = theta0 + z95 * sqrt(max(phi, 1)) * s,
       lower998_multiplicative = theta0 - z998 * sqrt(max(phi, 1)) * s,
       upper95_additive = theta0 + z95 * sqrt(s^2 + tau2),
       lower998_additive = theta0 - z998 * sqrt(s^2 + tau2))
}
out$funnel_baseline <- funnel(change ~ arm + baseline)
out$funnel_arm_only <- funnel(change ~ arm)

writeLines(toJSON(out, auto_unbox = TRUE, digits = 10, pretty = TRUE),
           file.path(dir, "r_benchmarking.json"))
