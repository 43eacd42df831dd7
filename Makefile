# kafkalake: two commands on a fresh machine.
#   make demo   bootstrap what is missing, bring the local platform up
#   make test   bootstrap what is missing, run the whole suite (fixtures start Kafka/Spark/Airflow)
# Prerequisites: Python 3.11, Java 17, Maven. Everything else is installed here.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
STATE := $(or $(KAFKALAKE_STATE_DIR),$(CURDIR)/.kafkalake)
JARS := $(or $(KAFKALAKE_JARS_DIR),$(STATE)/jars)
MVN := mvn -B -q -s jvm/maven-settings.xml -f jvm/pom.xml
PYTEST_ARGS ?=

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help bootstrap venv jars browser demo up down status lint test test-unit bench clean

help:
	@echo "make demo   - bootstrap (venv, jars) and start Kafka + Airflow (kafkalake up)"
	@echo "make test   - bootstrap and run the whole test suite (lint first)"
	@echo "make lint   - ruff (config in pyproject.toml) over the whole tree"
	@echo "make bench  - run the benchmarks in benchmarks/"
	@echo "make down   - stop everything kafkalake started"
	@echo "make clean  - remove the state folder (.kafkalake/) and the venv"

bootstrap: venv jars

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/lock.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11 (or run make PYTHON=/path/to/python3.11)"; exit 1; }
	@echo "==> creating $(VENV) (Python deps pinned in requirements/lock.txt)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(VENV)/bin/uv pip sync -q --python $(VENV)/bin/python requirements/lock.txt
	@$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python --no-deps -e .
	@touch $@

jars: $(JARS)/.installed

$(JARS)/.installed: jvm/pom.xml jvm/spark-connectors/pom.xml jvm/kafka-broker/pom.xml
	@command -v java >/dev/null || { echo "error: java not found: install Java 17 (e.g. apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: mvn not found: install Maven (e.g. apt-get install maven)"; exit 1; }
	@echo "==> fetching JVM jars with Maven into $(JARS)"
	@rm -rf $(JARS) && mkdir -p $(JARS)
	@$(MVN) dependency:copy-dependencies -Djars.dir=$(JARS)
	@touch $@

# Regenerate the lock after changing pyproject.toml dependencies.
lock: venv
	$(VENV)/bin/uv pip compile -q pyproject.toml --extra test --override requirements/overrides.txt \
		--python-version 3.11 -o requirements/lock.txt

# The demo runs on a registry of its own (v1 only, in the state folder) so that it can roll
# the fridge schema out from v1 to v2 live without touching schemas/ in git.
DEMO_SCHEMAS := $(STATE)/demo/schemas

demo: bootstrap
	KAFKALAKE_SCHEMAS_DIR=$(DEMO_SCHEMAS) kafkalake up
	KAFKALAKE_SCHEMAS_DIR=$(DEMO_SCHEMAS) kafkalake demo

up: bootstrap
	kafkalake up

down:
	@test -x $(VENV)/bin/kafkalake && kafkalake down || true

status: venv
	kafkalake status

# Lint first: a lint error fails in seconds, before the suite starts any broker.
lint: venv
	$(VENV)/bin/ruff check .

# The operator-view tests drive a real Chromium (tests/integration/test_ui.py).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		test "$$(id -u)" = 0 || { echo "error: chromium and chromedriver are missing: run 'sudo apt-get install -y chromium chromium-driver' (or make browser as root)"; exit 1; }; \
		echo "==> installing Chromium (apt)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }

test: venv browser
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory jars
	$(VENV)/bin/kafkalake schema check --all
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(VENV)/bin/python -m pytest tests/unit tests/dags $(PYTEST_ARGS)

bench: bootstrap
	$(VENV)/bin/python -m benchmarks $(BENCH_ARGS)

clean: down
	rm -rf $(STATE) $(VENV)
