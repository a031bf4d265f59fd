# Reference numbers for the episode count models (src/analysis/models/glmm_counts.py, gee_counts.py,
# episodes.py). Usage: Rscript tests/reference/r_counts_reference.R tests/reference
# Reads epil.csv and episodes_sim.csv (made by make_episodes_sim.py), writes r_counts_reference.json.
suppressMessages({library(lme4); library(glmmTMB); library(geepack); library(MASS); library(jsonlite)})
dir <- commandArgs(TRUE)[1]
out <- list(generated_by = paste("R", getRversion(), "lme4", packageVersion("lme4"),
  "glmmTMB", packageVersion("glmmTMB"), "geepack", packageVersion("geepack"),
  "MASS", packageVersion("MASS")))
# glmer's default second-stage optimiser (Nelder_Mead) stops ~3e-4 short of the Laplace maximum
# on epil; bobyqa with a tight rhoend reaches it (logLik higher), so these are the converged numbers.
tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
  optCtrl = list(rhobeg = 0.2, rhoend = 1e-10, maxfun = 1e5))
est_se <- function(est, se) lapply(setNames(seq_along(est), names(est)),
  function(i) list(estimate = unname(est[i]), std_error = unname(se[i])))
gee_tab <- function(g) { s <- summary(g)$coefficients; est_se(setNames(s[, "Estimate"], rownames(s)),
  setNames(s[, "Std.err"], rownames(s))) }
glmer_out <- function(m) list(coef = est_se(fixef(m), sqrt(diag(as.matrix(vcov(m))))),
  sd_patient = unname(attr(VarCorr(m)[[1]], "stddev")), logLik = as.numeric(logLik(m)),
  optimizer = m@optinfo$optimizer)
tmb_out <- function(m) list(coef = est_se(fixef(m)$cond, sqrt(diag(vcov(m)$cond))),
  sd_patient = unname(attr(VarCorr(m)$cond[[1]], "stddev")), theta = sigma(m),
  logLik = as.numeric(logLik(m)))

# geepack's variance functions are gaussian/binomial/poisson/gamma only ("variance invalid" for
# MASS::negative.binomial), so the NB GEE is this short hand-written Fisher scoring with geepack's
# moment estimators (phi = sum r^2 / N, alpha = sum_pairs r r / (phi * n_pairs)); it is first run
# with the Poisson variance and must reproduce geeglm to 1e-7, or the script stops.
gee_exch <- function(formula, data, id, varfun, tol = 1e-12) {
  mf <- model.frame(formula, data); X <- model.matrix(formula, mf); y <- model.response(mf)
  off <- model.offset(mf); if (is.null(off)) off <- rep(0, length(y))
  ids <- split(seq_along(y), data[[id]])
  beta <- coef(glm.fit(X, y, family = poisson(), offset = off))
  for (it in 1:200) {
    mu <- exp(drop(X %*% beta) + off); r <- (y - mu) / sqrt(varfun(mu))
    phi <- sum(r^2) / length(y)
    alpha <- sum(sapply(ids, function(i) (sum(r[i])^2 - sum(r[i]^2)) / 2)) /
      (phi * sum(sapply(ids, function(i) length(i) * (length(i) - 1) / 2)))
    A <- 0; B <- 0; b <- 0
    for (i in ids) {
      R <- matrix(alpha, length(i), length(i)); diag(R) <- 1
      s <- sqrt(varfun(mu[i])); Vi <- solve(outer(s, s) * R)
      D <- mu[i] * X[i, , drop = FALSE]; sc <- t(D) %*% Vi %*% (y[i] - mu[i])
      A <- A + t(D) %*% Vi %*% D; b <- b + sc; B <- B + sc %*% t(sc)
    }
    step <- drop(solve(A, b)); beta <- beta + step
    if (max(abs(step)) < tol) break
  }
  V <- solve(A) %*% B %*% solve(A)
  list(coef = est_se(beta, sqrt(diag(V))), alpha = alpha, iterations = it)
}
check_gee <- function(own, g) { ref <- summary(g)$coefficients
  d <- max(abs(sapply(own$coef, `[[`, "estimate") - ref[, "Estimate"]),
           abs(sapply(own$coef, `[[`, "std_error") - ref[, "Std.err"]))
  if (d > 1e-7) stop("hand-written GEE does not reproduce geeglm: ", d); d }

ep <- read.csv(file.path(dir, "epil.csv")); ep$trt <- factor(ep$trt, levels = c("placebo", "progabide"))
ep <- ep[order(ep$subject, ep$period), ]
fe <- y ~ trt + lbase + lage + V4
gm <- glmer(update(fe, . ~ . + (1 | subject)), family = poisson, data = ep, control = tight)
out$epil_glmer_poisson_bobyqa <- c(list(formula = "y ~ trt + lbase + lage + V4 + (1 | subject), Laplace, bobyqa rhoend=1e-10 tolPwrss=1e-12"), glmer_out(gm))
nb <- glmmTMB(update(fe, . ~ . + (1 | subject)), family = nbinom2, data = ep)
out$epil_glmmtmb_nbinom2 <- c(list(formula = "y ~ trt + lbase + lage + V4 + (1 | subject), nbinom2"), tmb_out(nb))
gnb <- glm.nb(fe, data = ep)
out$epil_glm_nb <- list(formula = "y ~ trt + lbase + lage + V4, MASS::glm.nb (independence)",
  theta = gnb$theta, coef = est_se(coef(gnb), sqrt(diag(vcov(gnb)))), logLik = as.numeric(logLik(gnb)))
self_check <- check_gee(gee_exch(fe, ep, "subject", function(mu) mu),
  geeglm(fe, family = poisson, id = subject, data = ep, corstr = "exchangeable"))
th <- gnb$theta
out$epil_gee_negbin_exch <- c(list(formula = "y ~ trt + lbase + lage + V4, NB variance mu + mu^2/theta (theta of epil_glm_nb), exchangeable, robust SE; hand-written GEE (gee_exch above)",
  poisson_self_check_max_abs_diff_vs_geeglm = self_check),
  gee_exch(fe, ep, "subject", function(mu) mu + mu^2 / th))

# Simulated log: follow-up rows (week > 0), baseline covariate as in src/analysis/endpoints/episodes.py.
sim <- read.csv(file.path(dir, "episodes_sim.csv"))
base <- aggregate(cbind(episodes, exposure_days) ~ patient_id, data = sim[sim$week <= 0, ], FUN = sum)
fu <- sim[sim$week > 0, ]
base <- base[base$patient_id %in% fu$patient_id, ]
base$log_baseline_rate <- log((base$episodes + 0.5) / base$exposure_days)
base$log_baseline_rate <- base$log_baseline_rate - mean(base$log_baseline_rate)
fu <- merge(fu, base[, c("patient_id", "log_baseline_rate")], by = "patient_id")
fu$arm <- factor(fu$arm, levels = c("usual_care", "orthotics", "strength_training"))
fu$patient <- factor(fu$patient_id)
fu <- fu[order(fu$patient_id, fu$week), ]
fs <- episodes ~ arm + log_baseline_rate + age + sex + offset(log(exposure_days))
out$sim_glmer_poisson <- c(list(formula = "episodes ~ arm + log_baseline_rate + age + sex + offset(log(exposure_days)) + (1 | patient_id), bobyqa tight"),
  glmer_out(glmer(update(fs, . ~ . + (1 | patient)), family = poisson, data = fu, control = tight)))
out$sim_glmmtmb_nbinom2 <- c(list(formula = "same, glmmTMB nbinom2"),
  tmb_out(glmmTMB(update(fs, . ~ . + (1 | patient)), family = nbinom2, data = fu)))
gp <- geeglm(fs, family = poisson, id = patient, data = fu, corstr = "exchangeable")
out$sim_gee_poisson_exch <- list(formula = "same without random effect, geeglm poisson exchangeable",
  coef = gee_tab(gp), alpha = unname(gp$geese$alpha))
snb <- glm.nb(fs, data = fu)
sth <- snb$theta
out$sim_gee_negbin_exch <- c(list(formula = "same, NB variance (theta of glm.nb), exchangeable, hand-written GEE (gee_exch)",
  theta = sth, poisson_self_check_max_abs_diff_vs_geeglm = check_gee(gee_exch(fs, fu, "patient", function(mu) mu), gp)),
  gee_exch(fs, fu, "patient", function(mu) mu + mu^2 / sth))
writeLines(toJSON(out, auto_unbox = TRUE, digits = 12, pretty = TRUE), file.path(dir, "r_counts_reference.json"))
