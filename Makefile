# heatrig: `make run` simulates a session, `make test` runs the tests.
# Both create (or refresh) the virtual environment in .venv from pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.heatrig-installed
ESP32_STUBS := $(VENV)/esp32-stubs
# the 32-bit MicroPython (WebAssembly, npm) of the heap check: wasm/package.json
WASM_STAMP := wasm/node_modules/.heatrig-installed

.PHONY: run test test-loaded test-net traces safety bench bench-baseline power-campaign lint \
	format layout-check clean deploy flash update-sweep heap32 board-check ble-fuzz mutation

run: $(STAMP)
	$(BIN)/heatrig sim scenarios/hci.toml --out results/hci

# the `dut` tests then run on a virtual board at its pty's path, the command as
# the README writes it for a board; the board holds a user's records, and
# tests/board_session.py fails the run unless they are byte-identical after it
BOARD_SESSION := $(BIN)/python -m tests.board_session

# the simulator's tests in parallel (pytest-xdist): each run is a process of
# its own and virtual time keeps them deterministic on a busy machine
TEST_WORKERS ?= 2

test: lint heap32
	$(BIN)/pytest -n $(TEST_WORKERS) --junitxml=results/junit.xml
	$(BOARD_SESSION) -- $(BIN)/pytest -m dut --target serial --port {port} \
		--junitxml=results/junit-serial.xml

# `make test` three times in a row with every core kept busy by another load:
# nothing in the suite may need a quiet machine (tests/under_load.py)
test-loaded: $(STAMP)
	$(BIN)/python -m tests.under_load --runs 3 -- $(MAKE) test

# the same `dut` tests through an RFC 2217 server on loopback in front of the board
test-net: $(STAMP)
	$(BOARD_SESSION) --rfc2217 -- $(BIN)/pytest -m dut --target serial --port {port} \
		--junitxml=results/junit-rfc2217.xml

# record the shipped link traces (tests/data/traces) again
traces: $(STAMP)
	$(BIN)/python -m tests.data.traces.record

# firmware updates: a power cut at every N-th byte of a transfer (>= 500 cuts), at
# every byte of the switch and of the trial boot, one byte changed at every
# position of an image's header (make test runs a fixed sample of each), and an
# update over the virtual board's console (real time, about a minute)
update-sweep: $(STAMP)
	HEATRIG_UPDATE_SWEEP=full $(BIN)/pytest -s tests/update/test_update_device.py \
		tests/update/test_update_vboard.py

# the generated safety campaign: 10,000 scenarios on every core (docs/safety.md);
# make test runs a fixed-seed slice of it. Results: results/campaigns/safety/
safety: $(STAMP)
	$(BIN)/heatrig campaign campaigns/safety.toml

# the BLE security fuzz: 2,000 seeded hostile sequences (make test runs the first 40);
# SEQUENCES=N for another count, HEATRIG_BLE_FUZZ_SEED / _ONLY to vary or rerun one
ble-fuzz: $(STAMP)
	HEATRIG_BLE_FUZZ=$(or $(SEQUENCES),2000) $(BIN)/pytest tests/ble/test_ble_fuzz.py -q

# deploy to a board: make deploy PORT=/dev/ttyUSB0 (HARDWARE=1: the real heater stage, no plant)
deploy: $(STAMP)
	@test -n "$(PORT)" || { echo "make deploy PORT=/dev/ttyUSB0 (the board's serial port)"; exit 2; }
	$(BIN)/heatrig deploy --port $(PORT) $(if $(HARDWARE),--hardware)

# MicroPython onto a bare ESP32, then the firmware: make flash PORT=/dev/ttyUSB0 IMAGE=ESP32_GENERIC-v1.28.0.bin
flash: $(STAMP)
	@test -n "$(PORT)" -a -n "$(IMAGE)" || { echo "make flash PORT=/dev/ttyUSB0 IMAGE=FILE.bin"; exit 2; }
	$(BIN)/heatrig flash --port $(PORT) --image $(IMAGE) $(if $(HARDWARE),--hardware)

# benchmarks: saved under results/benchmarks, judged against benchmarks/baseline.json
bench: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-only --benchmark-autosave --benchmark-storage=results/benchmarks

# the power campaign: 40 days of sessions and USB charges over cell spread and age,
# ambient and adapter (campaigns/power_monte_carlo.toml; ~26 s a run, 40 runs: ~9 min on 2 idle cores)
power-campaign: $(STAMP)
	$(BIN)/heatrig campaign campaigns/power_monte_carlo.toml

# record the current figures as the baseline (after an intended change; commit it)
bench-baseline: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-only --update-baseline

# mutation testing of the safety modules (docs/qa.md#mutation-testing):
# make mutation [MODULES="heater_ctl store"] [ARGS="--scheduler tcp://host:8786"]
MODULES ?= heater_safety heater_ctl puff_detect store calib ble_gatt
mutation: $(STAMP)
	$(BIN)/python -m hil.mutation $(MODULES) $(ARGS)

# ruff checks all of them; MicroPython's (firmware, sim, benchmarks/mpy) by the
# rules of firmware/ruff.toml, and `ruff format` leaves them as laid out (pyproject.toml)
PY_SOURCES := hil tests benchmarks firmware sim

lint: $(STAMP)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy
	MYPYPATH=$(ESP32_STUBS) $(BIN)/mypy --config-file tests/esp32/mypy.ini \
		--custom-typeshed-dir $(ESP32_STUBS) firmware

format: $(STAMP)
	$(BIN)/ruff format $(PY_SOURCES)
	$(BIN)/ruff check --fix $(PY_SOURCES)

# hil/'s and sim/'s import graphs, their cycles, crowded folders (tests/test_layout.py)
layout-check: $(STAMP)
	$(BIN)/python -m tests.test_layout

# the firmware's heap on a 32-bit MicroPython against the ESP32 port's (hil/simulator/heap32.py)
heap32: $(STAMP) $(WASM_STAMP)
	$(BIN)/python -m hil.simulator.heap32

# what a board is, beside what the simulator assumes: make board-check PORT=/dev/ttyUSB0 (or virtual)
board-check: $(STAMP)
	@test -n "$(PORT)" || { echo "make board-check PORT=/dev/ttyUSB0 (the board's serial port, or virtual)"; exit 2; }
	$(BIN)/heatrig board-check --port $(PORT) $(if $(WINDOW),--window $(WINDOW)) --out results/board.json

# Node and npm from Debian if the machine has none (as root), then the pinned package
$(WASM_STAMP): wasm/package.json wasm/package-lock.json
	command -v npm >/dev/null || { apt-get update && apt-get install -y nodejs npm; }
	cd wasm && npm ci --no-audit --no-fund
	touch $(WASM_STAMP)

# firmware/version.py: the package's version (pyproject.toml reads it at install)
$(STAMP): pyproject.toml firmware/version.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -rf $(ESP32_STUBS)
	$(BIN)/python -m pip install --quiet --target $(ESP32_STUBS) \
		"$$($(BIN)/python -m hil.simulator.toolchain esp32-stubs)"
	touch $(STAMP)

clean:
	rm -rf build results .pytest_cache .mypy_cache .ruff_cache
