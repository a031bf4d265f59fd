# Two commands for a fresh machine (Python 3.11, make, git): `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo test lab bench clean validate-stats

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP) ## set up, then run the suite on the bundled example log into reports/demo/
	$(BIN)/outcomes demo --out reports/demo

test: $(STAMP) ## set up, then run the whole test suite
	$(BIN)/python -m pytest -q

validate-stats: $(STAMP) ## coverage and type-I error over 500 + 500 simulated logs; wrong firm verdicts over 3 x 200 (reports/validation/)
	$(BIN)/python -m analysis.studies.calibration --logs 500 --firmness 200 --firmness-logs 200 --out reports/validation

lab: $(STAMP) ## open JupyterLab on notebooks/
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP) ## time the engines against lme4, lmerTest, statsmodels, mixedlm-rs, mixedlm; MMRM vs nlme::gls and 56 ms (reports/bench/)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m analysis.studies.bench --out reports/bench

clean: ## remove the virtual environment and all reports
	rm -rf $(VENV) reports/*/
