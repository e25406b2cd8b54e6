# Every target sets itself up first (scripts/bootstrap.sh is idempotent).
VENV    := .venv
PY      := $(VENV)/bin/python
PHONELAB:= $(VENV)/bin/phonelab
PORT    ?=
BOARD   ?= virtual
FIRMWARE?=
ARGS    ?=
# The ESP32-faithful virtual boards `make test-faithful` runs the scenario library on.
FAITHFUL?= olimex-esp32-poe-iso-wrover wt32-eth01

.PHONY: setup demo test test-wheel test-long test-faithful test-firmware bench bench-quick flash deploy repl lab-up lab-down vboard clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PHONELAB) demo $(ARGS)

test: setup
	$(PY) -m pytest $(ARGS)

# The wheel installed into a fresh venv in a temporary folder, `phonelab --version` and
# `phonelab demo` run from it (about a minute; `make test` checks the wheel's contents).
test-wheel: setup
	PHONELAB_WHEEL=1 $(PY) -m pytest tests/host/test_packaging.py $(ARGS)

# Everything: `make test` plus the tests marked `long` (tests/conftest.py), which it leaves
# out for the CI budget (about 35 minutes in all).
test-long: setup
	PHONELAB_LONG=1 $(PY) -m pytest $(ARGS)

# The whole scenario library on each faithful board in turn, at its calibrated CPU speed
# (about 10 minutes a profile; every profile runs, the target fails if any did).
test-faithful: setup
	@rc=0; for p in $(FAITHFUL); do echo "== scenarios on virtual:$$p"; \
	  PHONELAB_LONG=1 $(PY) -m pytest tests/scenarios/test_scenarios.py --board virtual:$$p $(ARGS) || rc=1; \
	done; exit $$rc

test-firmware: setup
	$(PY) -m pytest tests/firmware $(ARGS)

bench: setup
	$(PY) -m bench $(ARGS)

bench-quick: setup
	$(PY) -m bench --quick $(ARGS)

flash: setup
	@test -n "$(PORT)" || (echo "usage: make flash BOARD=name PORT=/dev/ttyUSB0 FIRMWARE=image.bin"; exit 2)
	$(PHONELAB) flash --board $(BOARD) --port $(PORT) --firmware $(FIRMWARE)

deploy: setup
	@test -n "$(PORT)" || (echo "usage: make deploy PORT=/dev/ttyUSB0 (or socket://127.0.0.1:PORT, or a vboard pty)"; exit 2)
	$(PHONELAB) deploy --port $(PORT) $(ARGS)

repl: setup
	@test -n "$(PORT)" || (echo "usage: make repl PORT=/dev/ttyUSB0"; exit 2)
	$(PHONELAB) repl --port $(PORT)

vboard: setup
	$(PHONELAB) vboard $(ARGS)

lab-up: setup
	$(PHONELAB) lab up $(ARGS)

lab-down: setup
	$(PHONELAB) lab down

clean:
	rm -rf $(VENV) build out .pytest_cache
