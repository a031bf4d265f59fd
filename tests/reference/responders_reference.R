# Reference numbers for tests/endpoints/test_responders.py, from base R only (stats::prop.test).
# Run:  Rscript tests/reference/responders_reference.R tests/reference
# Writes responders_reference.json (15 significant digits) into the folder given.
#
# wilson.<x>_<n>[_<level>]   prop.test(x, n, correct = FALSE, conf.level = level)$conf.int
#                            = the Wilson score interval (Newcombe 1998a, method 3)
# ztest.<x1>_<n1>_vs_<x2>_<n2>  prop.test(c(x1, x2), c(n1, n2), correct = FALSE):
#                            X-squared (= z^2 of the pooled two-proportion z-test) and p.value
# newcombe.<...>            Newcombe (1998b) method 10 square-and-add, written out here from its
#                            formula and fed with the prop.test Wilson limits above (base R has no
#                            function for it); Table II of the paper prints these to 4 decimals.

args <- commandArgs(trailingOnly = TRUE)
out_dir <- if (length(args) >= 1) args[1] else "."

num <- function(v) sprintf("%.15g", v)

wilson <- function(x, n, level = 0.95) {
  as.numeric(prop.test(x, n, correct = FALSE, conf.level = level)$conf.int)
}

entries <- character(0)
add <- function(key, fields) {
  body <- paste(sprintf('"%s": %s', names(fields), vapply(fields, num, "")), collapse = ", ")
  entries <<- c(entries, sprintf('    "%s": {%s}', key, body))
}

# Newcombe (1998a) Table I examples, plus one at 90 % to check alpha is passed through.
for (case in list(c(81, 263), c(15, 148), c(0, 20), c(1, 29))) {
  ci <- suppressWarnings(wilson(case[1], case[2]))
  add(sprintf("wilson.%d_%d", case[1], case[2]),
      list(x = case[1], n = case[2], conf_low = ci[1], conf_high = ci[2]))
}
ci <- wilson(81, 263, 0.90)
add("wilson.81_263_0.90", list(x = 81, n = 263, level = 0.90, conf_low = ci[1], conf_high = ci[2]))

# Newcombe (1998b) Table II examples (a)-(d), which have both proportions away from 0/1 pooled.
for (case in list(c(56, 70, 48, 80), c(9, 10, 3, 10), c(6, 7, 2, 7), c(5, 56, 0, 29))) {
  x1 <- case[1]; n1 <- case[2]; x2 <- case[3]; n2 <- case[4]
  key <- sprintf("%d_%d_vs_%d_%d", x1, n1, x2, n2)
  test <- suppressWarnings(prop.test(c(x1, x2), c(n1, n2), correct = FALSE))
  add(paste0("ztest.", key), list(x1 = x1, n1 = n1, x2 = x2, n2 = n2,
                                 chisq = unname(test$statistic), p_value = test$p.value))
  p1 <- x1 / n1; p2 <- x2 / n2
  w1 <- suppressWarnings(wilson(x1, n1)); w2 <- suppressWarnings(wilson(x2, n2))
  d <- p1 - p2
  add(paste0("newcombe.", key), list(x1 = x1, n1 = n1, x2 = x2, n2 = n2, estimate = d,
      conf_low = d - sqrt((p1 - w1[1])^2 + (w2[2] - p2)^2),
      conf_high = d + sqrt((w1[2] - p1)^2 + (p2 - w2[1])^2)))
}

json <- paste0("{\n",
               sprintf('  "generated_by": "%s, stats::prop.test",\n', R.version.string),
               '  "cases": {\n', paste(entries, collapse = ",\n"), "\n  }\n}\n")
writeLines(json, file.path(out_dir, "responders_reference.json"), sep = "")
