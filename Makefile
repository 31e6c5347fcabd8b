# lpu-cosim: every target sets itself up. `make sim` and `make test` create .venv and install
# the pinned dependencies when .venv is missing or older than pyproject.toml.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CONFIG ?=
TEST   ?=
SEED   ?=
SEEDS  ?=
WAVES  ?=
SIM    ?= verilator
SHARD  ?=
JOBS   ?=
CLUSTER ?=
NETLIST ?=
CLUSTER_BUILDS ?=
BOARD  ?= icebreaker

.PHONY: help install sim test test-heavy verilog lint bench bench-rtl bitstream fpga-table mutate formal coverage plots clean distclean configs iverilog ccache fst-headers

help:
	@echo "make sim      cocotb regression over every preset (CONFIG= TEST= SEED= SEEDS= WAVES=1 SIM= SHARD=i/n CLUSTER= NETLIST=board)"
	@echo "make test     the test suite (model, lint, CLI, simulations), but for its heaviest builds"
	@echo "make test-heavy the eleven heaviest tests make test leaves out (15.8 min after make test, beside a place and route)"
	@echo "make verilog  generated Verilog in build/verilog/<preset>/ (CONFIG=preset)"
	@echo "make lint     verilator --lint-only -Wall on the generated Verilog"
	@echo "make bench    simulation speed vs native Verilator, utilisation, model speed, scaling"
	@echo "make bench-rtl the autoencoder's 4-tile pipeline on the model and the RTL (~20 min)"
	@echo "make mutate   mutation score of the regression (MUTANTS= SEED= CONFIG= JOBS= CLUSTER=)"
	@echo "make coverage source-line coverage of rtl/ by the testbenches (CONFIG= TEST= JOBS=)"
	@echo "make bitstream BOARD=icebreaker|ulx3s: tile + bridge on the FPGA, build/fpga/<board>/report.json (SYNTH_ONLY=1 MHZ= CONFIG= PNR="nextpnr options" MINUTES= SEED=)"
	@echo "make fpga-table                     the README's FPGA table, regenerated from build/fpga/*/report.json"
	@echo "make plots    redraw every plot whose results exist into docs/plots/ (the README's figures)"
	@echo "make formal   formal proofs of the components' contracts (CONFIG= TASK=)"
	@echo "make install  create .venv with the pinned dependencies"

$(STAMP): pyproject.toml
	@for t in c++ perl make; do command -v $$t >/dev/null 2>&1 || { \
	  echo "error: '$$t' not found: install it (Debian: apt-get install g++ perl make)" >&2; exit 1; }; done
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "error: '$(PYTHON)' not found: install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $(STAMP)

install: $(STAMP)

configs: $(STAMP)
	$(BIN)/lpu configs

# Optional Debian packages, installed when missing and possible (root + apt-get), else a warning:
# $(call apt_install,CHECK (a shell test),PACKAGES,what happens without them)
define apt_install
	@$(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(2) (apt-get)"; \
	    (apt-get install -y -qq $(2) >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $(2) >/dev/null 2>&1)) || \
	    echo "warning: could not install $(2); $(3)" >&2; \
	  else echo "warning: $(2) missing (apt-get install -y $(2)); $(3)" >&2; fi; }
endef

# Icarus Verilog for the cross-check
iverilog:
	$(call apt_install,command -v iverilog,iverilog,the Icarus cross-check will be skipped)

# ccache: Verilator's runtime is compiled once, not once per build (5x faster mutant builds)
ccache:
	$(call apt_install,command -v ccache,ccache,every Verilator build compiles its runtime again)

# the headers Verilator's FST wave writer compiles against: WAVES=1 gives FST, else VCD
fst-headers:
	$(call apt_install,printf '#include <lz4.h>\n#include <zlib.h>\n' | c++ -x c++ -fsyntax-only -,liblz4-dev zlib1g-dev,WAVES=1 writes VCD instead of FST)

sim: $(STAMP) ccache fst-headers $(if $(filter icarus,$(SIM)),iverilog)
	$(BIN)/lpu sim $(if $(CONFIG),--config $(CONFIG)) $(if $(TEST),--test $(TEST)) \
	  $(if $(SEED),--seed $(SEED)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(filter 1 yes true,$(WAVES)),--waves) \
	  --sim $(SIM) $(if $(SHARD),--shard $(SHARD)) $(if $(JOBS),--jobs $(JOBS)) \
	  $(if $(CLUSTER),--cluster $(CLUSTER)) $(if $(CLUSTER_BUILDS),--cluster-builds $(CLUSTER_BUILDS)) \
	  $(if $(NETLIST),--netlist $(NETLIST))

# the longest tests first (tests/conftest.py's LONG), each core's share a slice of the order;
# a core that runs out takes the short tests at the end of the other's (worksteal)
test: $(STAMP) iverilog ccache fst-headers
	$(BIN)/python -m pytest -n auto --dist worksteal -q

# the tests make test leaves out (marked heavy in tests/): the slowest builds of what it samples
test-heavy: $(STAMP) iverilog ccache fst-headers
	$(BIN)/python -m pytest -n auto --dist worksteal -q -m heavy

verilog: $(STAMP)
	$(BIN)/lpu verilog $(if $(CONFIG),--config $(CONFIG))

lint: $(STAMP)
	$(BIN)/lpu lint $(if $(CONFIG),--config $(CONFIG))

bitstream: $(STAMP)
	$(BIN)/lpu bitstream --board $(BOARD) $(if $(filter 1 yes true,$(SYNTH_ONLY)),--synth-only) $(if $(MHZ),--mhz $(MHZ)) $(if $(CONFIG),--config $(CONFIG)) $(if $(PNR),--pnr-opts="$(PNR)") $(if $(MINUTES),--minutes $(MINUTES)) $(if $(SEED),--seed $(SEED))

# the README's FPGA table, from build/fpga/*/report.json
fpga-table: $(STAMP)
	$(BIN)/lpu fpga-table --readme README.md

# mutation testing of the tile: build/mutate/report.{json,md}
MUTANTS ?= 40
mutate: $(STAMP) ccache
	$(BIN)/lpu mutate --count $(MUTANTS) $(if $(SEED),--seed $(SEED)) \
	  $(if $(CONFIG),--config $(CONFIG)) $(if $(JOBS),--jobs $(JOBS)) $(if $(CLUSTER),--cluster $(CLUSTER))

# the README's figures: every plot whose results exist, into docs/plots/ (not committed)
plots: $(STAMP)
	$(BIN)/lpu plots

# source-line coverage: build/coverage/report.{json,md}
coverage: $(STAMP) ccache
	$(BIN)/lpu coverage $(if $(CONFIG),--config $(CONFIG)) $(if $(TEST),--test $(TEST)) \
	  $(if $(JOBS),--jobs $(JOBS))

# formal properties (formal/): SymbiYosys + smtbmc + Yices, all from PyPI
formal: $(STAMP)
	$(BIN)/lpu formal $(if $(CONFIG),--config $(CONFIG)) $(if $(TASK),--task $(TASK)) \
	  $(if $(JOBS),--jobs $(JOBS))

bench: $(STAMP)
	$(BIN)/lpu bench

bench-rtl: $(STAMP) ccache
	$(BIN)/lpu bench --rtl-scaling

clean:
	rm -rf build sim_build .pytest_cache

distclean: clean
	rm -rf $(VENV) *.egg-info
