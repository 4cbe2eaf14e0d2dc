# heatrig: `make run` simulates a session, `make test` runs the tests.
# Both create (or refresh) the virtual environment in .venv from pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.heatrig-installed
ESP32_STUBS := $(VENV)/esp32-stubs

.PHONY: run test bench bench-baseline lint format layout-check clean deploy mutation

run: $(STAMP)
	$(BIN)/heatrig sim scenarios/hci.toml --out results/hci

test: lint
	$(BIN)/pytest --junitxml=results/junit.xml
	$(BIN)/pytest -m dut --target serial --port virtual --junitxml=results/junit-serial.xml

# deploy to a board: make deploy PORT=/dev/ttyUSB0 (HARDWARE=1: the real heater stage, no plant)
deploy: $(STAMP)
	@test -n "$(PORT)" || { echo "make deploy PORT=/dev/ttyUSB0 (the board's serial port)"; exit 2; }
	$(BIN)/heatrig deploy --port $(PORT) $(if $(HARDWARE),--hardware)

# benchmarks: saved under results/benchmarks, judged against benchmarks/baseline.json
bench: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-only --benchmark-autosave --benchmark-storage=results/benchmarks

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
