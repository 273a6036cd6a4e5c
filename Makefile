# Two commands do everything on a fresh machine:
#   make demo   - the main job on the embedded default
#   make test   - the whole test suite
# Both run `make setup` first; it is idempotent and returns at once when nothing is missing.

# PYTHON: the interpreter the virtual environment is made with (3.11 or newer), e.g.
#   make setup PYTHON=python3.12
# An existing .venv made with another Python version is made anew; without PYTHON an
# existing .venv is kept whatever its version, and a new one uses python3.11 when present.
PYTHON ?=
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ddfa-installed
PYTEST_ARGS ?=

.PHONY: setup demo test test-quick clean venv

setup: venv $(STAMP) tools

# The interpreter: PYTHON as given, else python3.11, else python3; a name that pyenv
# knows but has not activated (python3.12 on a pyenv machine) is found through pyenv.
PY_NAME := $(or $(PYTHON),$(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3))
PY_EXE  := $(shell $(PY_NAME) -c 'import sys; print(sys.executable)' 2>/dev/null || \
                   pyenv whence --path $(PY_NAME) 2>/dev/null | tail -n 1)

venv:
	@test -n "$(PY_EXE)" || { echo "error: no Python interpreter '$(PY_NAME)'; install it or give PYTHON=python3.X (3.11 or newer)" >&2; exit 1; }
	@$(PY_EXE) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: $(PY_EXE) is older than Python 3.11; give PYTHON=python3.11 or newer" >&2; exit 1; }
	@if [ -n "$(PYTHON)" ] && [ -x $(BIN)/python ] && \
	    [ "$$($(BIN)/python -c 'import sys; print(sys.version_info[:2])')" != "$$($(PY_EXE) -c 'import sys; print(sys.version_info[:2])')" ]; then \
	  echo "$(VENV) was made with another Python version: making it anew with $(PY_EXE)"; rm -rf $(VENV); fi
	@test -x $(BIN)/python || $(PY_EXE) -m venv $(VENV)

$(STAMP): pyproject.toml
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

# Board programmers from Debian (about 1.6 MB together): iceprog (fpga-icestorm) for the
# iCE40 boards, openFPGALoader for the ECP5 boards. Only `ddfa build --program` needs them,
# so a failed install is a note, not an error, and it is tried once (stamp file).
PROG_STAMP := $(VENV)/.ddfa-programmers-tried
tools: $(PROG_STAMP)
$(PROG_STAMP):
	@missing=""; \
	command -v iceprog >/dev/null 2>&1 || missing="$$missing fpga-icestorm"; \
	command -v openFPGALoader >/dev/null 2>&1 || missing="$$missing openfpgaloader"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's$$missing (board programmers)"; \
	  (apt-get install -y -qq $$missing || (apt-get update -qq && apt-get install -y -qq $$missing)) >/dev/null 2>&1 || \
	  echo "note: could not install$$missing; 'ddfa build --program' says how when it is needed" >&2; \
	fi; mkdir -p $(VENV); touch $@

demo: setup
	$(BIN)/ddfa demo

# The processor's bitstream for a board (docs/BOARDS.md): make bitstream BOARD=ulx3s-85f
BOARD ?= icebreaker
.PHONY: bitstream bench-build bench-netlist
bitstream: setup
	$(BIN)/ddfa build --board $(BOARD) --out build/$(BOARD) --json build/$(BOARD)/build.json

# Place and route the UART link with a stand-in core on icebreaker and ulx3s-85f: the
# open toolchain's build time and the link's size and fmax (tests/bench_build.py).
bench-build: setup
	$(BIN)/python -m tests.bench_build icebreaker ulx3s-85f --out build/bench

# The generated Verilog of both defaults through Yosys (time, peak memory) and its
# netlist in simulation, 50 steps each (scripts/bench_netlist.sh).
bench-netlist: setup
	scripts/bench_netlist.sh

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# About 4 minutes: the tests not marked slow (all but the RTL simulation benches), two at a time.
test-quick: setup
	$(BIN)/python -m pytest -m "not slow" -n 2 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build out *.egg-info
