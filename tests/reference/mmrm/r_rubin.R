# Rubin's rules with Barnard-Rubin df, written out in base R as mice::pool() computes them
# (mice/R/pool.R: pool.fitlist -> barnard.rubin; mice is not installed here, so by hand).
# Rscript tests/reference/mmrm/r_rubin.R > tests/reference/mmrm/r_rubin.json
q <- c(4.21, 3.87, 4.55, 4.02, 4.38, 3.95, 4.61, 4.12)       # completed-data estimates
u <- c(2.71, 2.64, 2.80, 2.69, 2.75, 2.66, 2.83, 2.70)       # their variances (SE^2)
pool1 <- function(q, u, dfcom) {
  m <- length(q); qbar <- mean(q); ubar <- mean(u); b <- var(q)
  t <- ubar + (1 + 1 / m) * b
  lambda <- (1 + 1 / m) * b / t
  dfold <- (m - 1) / lambda^2
  dfobs <- (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lambda)
  df <- if (is.finite(dfcom)) dfold * dfobs / (dfold + dfobs) else dfold
  se <- sqrt(t)
  list(estimate = qbar, std_error = se, df = df, within = ubar, between = b, lambda = lambda,
       p_value = 2 * pt(-abs(qbar / se), df), conf_low = qbar - qt(0.975, df) * se,
       conf_high = qbar + qt(0.975, df) * se)
}
out <- list(q = q, u = u, dfcom_150 = pool1(q, u, 150), dfcom_inf = pool1(q, u, Inf))
cat(jsonlite::toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "\n")
