# Two commands do everything on a fresh machine:
#   make demo   - the main job on the embedded default
#   make test   - the whole test suite
# Both run `make setup` first; it is idempotent and returns at once when nothing is missing.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ddfa-installed
PYTEST_ARGS ?=

.PHONY: setup demo test clean

setup: $(STAMP) tools

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	@touch $(STAMP)

# Debian's Icarus Verilog (cocotb's Icarus runs); everything else comes from PyPI.
.PHONY: tools
tools:
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "installing Debian's iverilog"; \
	  (apt-get update -qq && apt-get install -y -qq iverilog) >/dev/null || \
	  { echo "error: could not install iverilog; run 'apt-get install iverilog' as root" >&2; exit 1; }; }

demo: setup
	$(BIN)/ddfa demo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build out *.egg-info
