# Two commands for a newcomer: `make demo` (or `make demo FAST=1`) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vnpol-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-integration labelstudio chromium encoders benchmarks clean

install: $(STAMP)

# A virtual environment with the package, its tests' dependencies, and PyTorch.
# torch==2.13.0 is the CPU wheel these machines carry; any torch>=2.2 already present is kept.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,ray,onnx]"
	touch $(STAMP)

encoders: install
	$(BIN)/vnpol encoders prepare

demo: install
	$(BIN)/python scripts/demo.py $(if $(filter 1,$(FAST)),--fast,)

# Headless Chromium for the HTML rendering test (Debian package; needs root or sudo).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: install chromium
	$(BIN)/python -m pytest -q

# Label Studio in a virtualenv of its own (its pinned dependencies would clash with ours).
LS_VENV ?= .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed
labelstudio: $(LS_STAMP)
$(LS_STAMP):
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q --upgrade pip
	$(LS_VENV)/bin/pip install -q "label-studio>=1.17"
	touch $(LS_STAMP)

# The annotation loop against a real Label Studio the test starts (SQLite, temporary data, free port).
# Without the package (no index reachable) the test is skipped and says why.
test-integration: install
	$(MAKE) labelstudio || echo "warning: could not install label-studio into $(LS_VENV); the integration test will be skipped"
	VNPOL_LABEL_STUDIO=$(abspath $(LS_VENV))/bin/label-studio $(BIN)/python -m pytest -q -m integration

benchmarks: install
	$(BIN)/python scripts/benchmark_accuracy.py
	$(BIN)/python scripts/benchmark_speed.py

clean:
	rm -rf models/demo models/tiny-demo .pytest_cache
