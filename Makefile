# ArtShift: `make repro` builds everything, `make test` runs the test suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
STAMP := $(VENV)/.installed
TEAM_DIR ?= .team

.PHONY: install repro test lint ui clean tracking-server tracking-stop push pull faults

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

repro: install
	dvc repro

test: install
	$(PY) -m pytest -q

# Every fault case (tests/faults, the long `faults` ones included, and the regression tests it
# reuses), then their table: case, trials, survived, data lost. FAULT_TRIALS=n shortens the repeats.
FAULTS_JSON := test-artifacts/faults.json
faults: install
	rm -f $(FAULTS_JSON)
	FAULTS_REPORT=$(FAULTS_JSON) $(PY) -m pytest -q -m 'faults or fault_case' tests; status=$$?; \
	$(PY) tests/faults/report.py $(FAULTS_JSON) && exit $$status

lint: install
	$(VENV)/bin/ruff check .

ui: install
	mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" --host 127.0.0.1 --port 5000

# A team's MLflow server (PostgreSQL store, proxied artifacts) on this machine; prints the export line.
tracking-server: install
	$(PY) -m artshift.tracking_server start --dir $(TEAM_DIR)

tracking-stop: install
	$(PY) -m artshift.tracking_server stop --dir $(TEAM_DIR)

# Data and models to / from the DVC remote (README: Working as a team).
push: install
	dvc push

pull: install
	dvc pull

clean:
	rm -rf data/raw data/processed models/checkpoints models/*.pt models/*.onnx models/run.json reports/*.png
