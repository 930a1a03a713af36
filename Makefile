# segflow: two commands on a fresh machine (`make run`, `make test`); the rest are conveniences.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
USERS ?= 1000
DAYS ?= 120
SEED ?= 7

export SEGFLOW_HOME ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(SEGFLOW_HOME)/dagster_home
export PATH := $(CURDIR)/$(BIN):$(PATH)
# One planned event per asset for a partition range (a two-year backfill starts in seconds).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= true

.PHONY: install run test test-fast dev mlflow docs lint lint-sql bench bench-realtime clean chromium java report redis screenshots

# sqlfluff's dbt templater compiles every model; vars.lint_only (.sqlfluff) gives it an in-memory
# DuckDB and placeholders for what the macros would read from the warehouse or from segflow's
# settings, so a bare `sqlfluff lint dbt_project/models` works too. Here the settings' real
# values come from `segflow dbt-vars` (dbt_project.yml holds no copy of them).
SQLFLUFF := $(BIN)/segflow dbt-vars --sqlfluff > $(VENV)/sqlfluff-vars.cfg && \
	DBT_SEND_ANONYMOUS_USAGE_STATS=false $(BIN)/sqlfluff
SQLFLUFF_VARS := --config $(VENV)/sqlfluff-vars.cfg

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@echo "installing into $(VENV) from requirements.lock (first time: a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)
	@echo "installed: $(VENV) (segflow, dagster, dbt, mlflow, great_expectations)"

## run: generate demo data and run the main daily job over the last $(DAYS) days
run: $(STAMP)
	$(BIN)/segflow run --users $(USERS) --days $(DAYS) --seed $(SEED)

# Two pytest-xdist workers (`make test WORKERS=1` for one process); a module stays on one worker
# and the expensive ones start first (tests/conftest.py). The table at the end is CPU seconds
# per module (tests/support/cpu_time.py).
WORKERS ?= 2
xdist = $(if $(filter-out 1,$(1)),-n $(1) --dist loadfile --no-loadscope-reorder)
PYTEST_PARALLEL := $(call xdist,$(WORKERS))
# The fast tier spends a third of its wall time waiting on local servers (rate-limit windows, a
# deliberately slow destination): a third worker overlaps those waits on two cores.
FAST_WORKERS ?= 3

## test: the test suite (real DuckDB, dbt, MLflow, GX, HTTP, headless Chromium)
test: $(STAMP) chromium java redis
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(SQLFLUFF) lint $(SQLFLUFF_VARS) dbt_project/models
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) tests

## test-fast: unit and single-component tests only (no end-to-end warehouse builds)
test-fast: $(STAMP) chromium redis
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q $(call xdist,$(FAST_WORKERS)) -m "not slow" tests

## dev: the Dagster UI on http://127.0.0.1:3000
dev: $(STAMP)
	$(BIN)/segflow prepare
	@echo "Dagster UI: http://127.0.0.1:3000  report: file://$${SEGFLOW_REPORT_DIR:-$(SEGFLOW_HOME)/report}/index.html (make report rebuilds it)"
	@echo "schedules start stopped (SEGFLOW_SCHEDULES_RUNNING=1 starts them); sensors run"
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## mlflow: the MLflow UI on http://127.0.0.1:5000 for this project's tracking store
mlflow: $(STAMP)
	$(BIN)/segflow mlflow-ui

## docs: dbt docs (every model and column with its tests) of the last run's warehouse
docs: $(STAMP)
	cd dbt_project && SEGFLOW_DUCKDB_PATH=$${SEGFLOW_DUCKDB_PATH:-$(SEGFLOW_HOME)/warehouse.duckdb} \
	  DBT_SEND_ANONYMOUS_USAGE_STATS=false $(CURDIR)/$(BIN)/dbt docs generate --quiet \
	  --profiles-dir . --target-path target/docs --vars "$$($(CURDIR)/$(BIN)/segflow dbt-vars)"
	@echo "dbt docs: dbt_project/target/docs/index.html" \
	  "(browse: cd dbt_project && dbt docs serve --target-path target/docs --host 127.0.0.1)"

## report: build the offline HTML report ($$SEGFLOW_HOME/report/index.html) from the last run
report: $(STAMP)
	$(BIN)/segflow report

## screenshots: regenerate the README's report images (docs/report-*.png) from the make-run demo
screenshots: $(STAMP) chromium
	$(BIN)/python scripts/screenshots.py

## chromium: the headless browser the report test drives (Debian package), installed if missing
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing chromium for the report test (apt-get)"; \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium could not be installed: the report's browser test will be skipped"

## java: Java 17+ for the Spark engine (pyspark 4.x), Debian's openjdk-17-jre-headless if missing
## or older (no `java`: JAVA_MAJOR is empty; Java 8 reports "1.8": both install). man1 must exist:
## slim Debian images lack it and the JRE's update-alternatives step fails without it.
JAVA_MAJOR = $(shell java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
java:
	@if [ "$(JAVA_MAJOR)" != "" ] && [ "$(JAVA_MAJOR)" -ge 17 ] 2>/dev/null; then :; else \
	  echo "installing openjdk-17-jre-headless for the Spark engine (apt-get)"; \
	  $(SUDO) mkdir -p /usr/share/man/man1 && \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null || \
	  echo "Java 17 could not be installed: the Spark engine tests will be skipped"; fi

## redis: the stream broker of the real-time path (Debian redis-server), installed if missing;
## tests start their own redis-server on a free port in a temp dir
redis:
	@command -v redis-server >/dev/null 2>&1 || \
	  { echo "installing redis-server for the real-time stream (apt-get)"; \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } || \
	  echo "redis-server could not be installed: the real-time tests will be skipped"

## lint: ruff (check + format) and sqlfluff over the dbt models (`make lint-sql FIX=1` fixes SQL)
lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(SQLFLUFF) lint $(SQLFLUFF_VARS) dbt_project/models

lint-sql: $(STAMP)
	$(SQLFLUFF) $(if $(FIX),fix,lint) $(SQLFLUFF_VARS) dbt_project/models

bench: $(STAMP)
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/transform.py
	$(BIN)/python bench/model_quality.py
	$(BIN)/python bench/sync.py

## bench-realtime: the real-time path (collector, arrival -> visible, serve) vs its goals, ~20 s
bench-realtime: $(STAMP) redis
	$(BIN)/python bench/realtime.py

clean:
	rm -rf data dbt_project/target dbt_project/logs
