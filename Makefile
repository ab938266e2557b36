# The README's two commands (`make demo`, `make test`) create the virtual environment themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo ui test test-deep bench clean build typecheck flash test-hw browser test-rp2 rp2-setup

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sim.demo

# `make ui [NO_BROWSER=1]`: the clinician's page (docs/ui.md) on the demo pump: a new virtual
# Pico in build/ui-pump, a 20 mL refill and the example prescription recorded with pumpctl, then
# `pumpctl ui` on it. Ctrl-C stops the page and the board.
UI_PUMP := build/ui-pump
ui: $(STAMP) browser
	@rm -rf $(UI_PUMP) && mkdir -p $(UI_PUMP)
	@$(BIN)/pumpsim board --flash $(UI_PUMP)/flash > $(UI_PUMP)/board.json & board=$$!; \
	  trap 'kill $$board 2>/dev/null' EXIT INT TERM; \
	  for i in $$(seq 150); do [ -s $(UI_PUMP)/board.json ] && break; sleep 0.2; done; \
	  port=$$($(BIN)/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["port"])' \
	    $(UI_PUMP)/board.json) || exit 1; \
	  ctl="$(BIN)/pumpctl --port $$port --key $(UI_PUMP)/flash/clinician.key"; \
	  $$ctl refill --volume "20 mL" --yes > /dev/null && \
	  $$ctl program examples/prescriptions/morphine_flex.toml --yes \
	    --override-titration "demo pump: already on intrathecal morphine" > /dev/null && \
	  $$ctl ui $(if $(NO_BROWSER),--no-browser)

# Two workers (pytest-xdist, one per core of the CI machine), a whole file to a worker: several
# modules share one board among their tests, each building on the steps before it (the relay,
# the update, the terminals), which worksteal could split across the workers (a relay test once
# ran on a pump never programmed). `--dist loadgroup` with xdist_group marks does not group
# here (pytest 9.2, xdist 3.8: tried, the marked tests still went to both workers). About half
# the wall time of one process (docs/benchmarks.md).
test: $(STAMP) browser
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -n 2 --dist loadfile

# Headless Chromium for the report-page test (tests/sim/test_report_browser.py): Debian's
# package, installed when missing. Installing needs root (CI runs as root); otherwise it says
# what to install.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then \
	      echo "installing Debian's chromium for the report test"; \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; \
	    else echo "make browser: install Debian's chromium (sudo apt-get install chromium)"; exit 2; fi; }

# Hardware in the loop: the end-to-end tests against a flashed pump (a Pico on USB serial).
# make test-hw PORT=/dev/ttyACM0 KEY=clinician.key [PATIENT_KEY=patient.key]
test-hw: $(STAMP)
	@test -n "$(PORT)" -a -n "$(KEY)" || { echo "usage: make test-hw PORT=/dev/ttyACM0 KEY=clinician.key [PATIENT_KEY=patient.key]"; exit 2; }
	$(BIN)/python -m pytest tests/e2e --port $(PORT) --key $(KEY) $(if $(PATIENT_KEY),--patient-key $(PATIENT_KEY))

# Many more random examples for the property tests. Turn each failure it finds into an
# explicit @example(...) regression on the test it broke.
test-deep: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest tests/firmware tests/host_tools/test_units.py

bench: $(STAMP)
	MICROPYTHON_UF2=$(abspath $(MICROPYTHON_UF2)) RP2040_BOOTROM=$(abspath $(RP2040_BOOTROM)) \
	  $(BIN)/python -m sim.bench

# ---- the emulated Pico (docs/hardware.md) -----------------------------------------------------
# `make test-rp2 [MICROPYTHON_UF2=...] [RP2040_BOOTROM=...]`: the firmware on the released
# MicroPython rp2 UF2 in an emulated RP2040 (rp2040js, pinned in sim/rp2/package-lock.json and
# installed from the npm registry with the node that make venv brings), its pins on a bench.
# The UF2 and the RP2040 boot ROM are inputs, not part of the repository.
MICROPYTHON_UF2 ?= ../shared/rp2emu/RPI_PICO-v1.28.0.uf2
RP2040_BOOTROM ?= ../shared/rp2emu/bootrom.mjs
RP2_STAMP := sim/rp2/node_modules/.installed
RP2_ENV = MICROPYTHON_UF2=$(abspath $(MICROPYTHON_UF2)) RP2040_BOOTROM=$(abspath $(RP2040_BOOTROM))

rp2-setup: $(RP2_STAMP)

$(RP2_STAMP): $(STAMP) sim/rp2/package.json sim/rp2/package-lock.json
	$(BIN)/python -m sim.rp2board npm-ci
	touch $@

# Two emulated Picos at a time (pytest-xdist, one per core; each board has its own flash
# directory and TMPDIR), the longest tests first; the factory image is made once beforehand.
test-rp2: $(RP2_STAMP)
	@$(RP2_ENV) $(BIN)/python -m sim.rp2board check
	@$(RP2_ENV) $(BIN)/python -m sim.rp2board factory --templates
	$(RP2_ENV) PUMPSIM_RP2_PROVISIONED=$(CURDIR)/build/rp2 HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest --rp2 -n 2 --dist worksteal tests/rp2 tests/e2e

# Every scenario of the library (and the examples) with its report: open build/sim/index.html.
.PHONY: sim
sim: $(STAMP)
	$(BIN)/python -m sim.report build/sim examples/scenarios/*.toml examples/*.toml

# ---- the Pico target: build and typecheck (docs/hardware.md) ---------------------------------
# `make build [BOARD=pico|implant|virtual] [BUILD=dir]`: the exact bundle that goes onto the
# board: firmware/*.mpy, boards/*.mpy (the chosen board and what it imports) and, once it
# exists, the boot entry firmware/main.py copied to main.py at the top.
BOARD ?= pico
BUILD ?= build
BOARD_SHARED = $(if $(filter virtual,$(BOARD)),,boards/rp2_common.py boards/stepgen.py boards/tmc2209.py)

# -O3: no source line numbers in the bytecode (tracebacks name the file and the function, not
# the line). The Pico loads every module's bytecode into its heap: the line tables cost 4.3 KB
# of it (docs/benchmarks.md). -O3 also drops `assert` statements: the firmware and the boards
# have none (tests/repo/test_no_assert.py). Every .mpy that goes onto a board is compiled with
# MPY_FLAGS, by host_tools/mpybuild.py: it writes the integer constants other modules import in
# where they are used and names each file by its module (the Pico's interned names: see there).
MPY_FLAGS = -march=armv6m -O3

# DEV=1 builds a development bundle (firmware/buildinfo.py says "development"): it keeps the
# REPL for `pumpctl maintenance` and stops at an uncaught exception; the default, production,
# never hands out the REPL. main.py and loader.mpy at the top are the boot loader: only a
# first install copies them; a signed update (make flash) carries firmware/ and boards/.
build: $(STAMP)
	@test -f boards/$(BOARD).py || { echo "no board boards/$(BOARD).py"; exit 2; }
	rm -rf $(BUILD)/firmware $(BUILD)/boards $(BUILD)/main.py $(BUILD)/loader.mpy $(BUILD)/.buildinfo
	mkdir -p $(BUILD)/firmware $(BUILD)/boards $(BUILD)/.buildinfo
	@if [ -n "$(DEV)" ]; then echo 'KIND = "development"' > $(BUILD)/.buildinfo/buildinfo.py; fi
	@$(BIN)/python -m host_tools.mpybuild --out $(BUILD) --loader --flags "$(MPY_FLAGS)" \
	  $(if $(DEV),--replace firmware/buildinfo.py=$(BUILD)/.buildinfo/buildinfo.py) \
	  $(filter-out firmware/main.py,$(wildcard firmware/*.py)) boards/__init__.py boards/$(BOARD).py $(BOARD_SHARED)
	@rm -rf $(BUILD)/.buildinfo
	@if [ -f firmware/main.py ]; then cp firmware/main.py $(BUILD)/main.py; fi
	@echo "bundle $(BUILD) for board $(BOARD)$(if $(DEV), (development build),): $$(find $(BUILD)/firmware $(BUILD)/boards $(BUILD)/main.py $(BUILD)/loader.mpy -type f 2>/dev/null | xargs cat | wc -c) bytes in $$(find $(BUILD)/firmware $(BUILD)/boards $(BUILD)/main.py $(BUILD)/loader.mpy -type f 2>/dev/null | wc -l) files (main.py and loader.mpy, the boot loader, go only into a first install)"

# `make typecheck`: pyright over firmware/ and the RP2040 boards against the MicroPython rp2
# stubs (pyrightconfig.json), installed pinned into the git-ignored typings/.
STUBS_VER := 1.29.0.post1
STUBS := micropython-rp2-rpi-pico-stubs==$(STUBS_VER) micropython-stdlib-stubs==1.29.0.post2
TYPINGS_STAMP := typings/.installed-$(STUBS_VER)

$(TYPINGS_STAMP): $(STAMP)
	rm -rf typings
	$(BIN)/python -m pip install --quiet --no-deps --target typings $(STUBS)
	touch $@

# Put the compiled firmware on a pump: a Pico, or a virtual board from `pumpsim board`. A running
# pump gets a signed update over its protocol (KEY: the clinician key that opens the session;
# UPDATE_KEY: the update key that signs the bundle, by default the repository's
# DEVELOPMENT-ONLY key); a blank Pico gets its first install with mpremote, is provisioned (keys
# in the user's data directory, or KEYS_OUT) and has its clock set. The board is what answers on
# the port says it is. See host_tools/flash.py and docs/security.md.
flash: $(STAMP)
	$(BIN)/python -m host_tools.flash $(if $(PORT),--port $(PORT)) $(if $(KEY),--key $(KEY)) $(if $(UPDATE_KEY),--update-key $(UPDATE_KEY)) $(if $(DEV),--dev) $(if $(filter command line,$(origin BOARD)),--board $(BOARD)) $(if $(KEYS_OUT),--keys-out $(KEYS_OUT))

typecheck: $(STAMP) $(TYPINGS_STAMP)
	$(BIN)/pyright

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
