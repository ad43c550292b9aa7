# Two commands: `make dev` runs the product, `make test` passes the tests. Both bootstrap .venv
# from the pinned requirements.lock, so every machine installs the same versions.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
RHYTHM_HOME ?= $(CURDIR)/.rhythm
DEV_ENV := DAGSTER_HOME=$(DAGSTER_HOME) RHYTHM_HOME=$(RHYTHM_HOME) RHYTHM_DEMO=1

.PHONY: dev test venv lock-check lock system-deps lint validate bench clean soak

# The lock holds name==version lines only (no file paths or URLs): checked before every install and test.
lock-check:
	@$(PYTHON) tools/check_lock.py requirements.lock

$(BIN)/.installed: pyproject.toml requirements.lock tools/check_lock.py
	@$(PYTHON) tools/check_lock.py requirements.lock
	@echo "installing .venv from requirements.lock (the first time about 2 min; pip's output: $(VENV)/install.log)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@{ $(BIN)/pip install --upgrade "pip>=24" && $(BIN)/pip install -c requirements.lock -e '.[test]'; } \
	  > $(VENV)/install.log 2>&1 || { tail -30 $(VENV)/install.log; echo "install failed: $(VENV)/install.log" >&2; exit 1; }
	@touch $@

venv: $(BIN)/.installed

# Regenerate the lock in a clean venv (nothing from this machine's other installs can leak in).
LOCK_VENV := $(CURDIR)/.lock-venv
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade "pip>=24"
	$(LOCK_VENV)/bin/pip install --quiet --no-cache-dir -e '.[test]'
	$(LOCK_VENV)/bin/pip freeze --exclude-editable | grep -v '^pip==' > requirements.lock
	rm -rf $(LOCK_VENV)
	$(PYTHON) tools/check_lock.py requirements.lock

# Servers and the browser the tests start for real (Debian's influxdb, prometheus and chromium), installed when
# missing and we are root.
SYSTEM_DEPS := influxd:influxdb prometheus:prometheus chromium:chromium
system-deps:
	@missing=""; for pair in $(SYSTEM_DEPS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing$$missing (Debian)"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing:$$missing: sudo apt-get install$$missing" >&2; exit 1; fi; fi

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# the demo seed runs once (2-3 min); then the Dagster UI at http://127.0.0.1:3000 and the operator's dashboard at
# http://127.0.0.1:3001 (Ctrl-C stops both; `make clean` resets)
dev: lock-check venv $(DAGSTER_HOME)/dagster.yaml
	@$(DEV_ENV) $(BIN)/rhythm demo-seed
	@echo "starting: the dashboard at http://127.0.0.1:3001 now, the Dagster UI at http://127.0.0.1:3000 in about 20 s (Ctrl-C stops both)"
	@$(DEV_ENV) $(BIN)/rhythm dashboard --host 127.0.0.1 --port 3001 --dagster-url http://127.0.0.1:3000 & dash=$$!; \
	  trap 'kill $$dash 2>/dev/null; wait $$dash 2>/dev/null' EXIT; \
	  $(DEV_ENV) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000 --log-level warning

# tests make their own instances and homes; an outer DAGSTER_HOME must not leak in
test: lock-check venv system-deps
	$(BIN)/ruff check .
	env -u DAGSTER_HOME $(BIN)/dagster definitions validate -m rhythm_pipelines.definitions
	env -u DAGSTER_HOME $(BIN)/pytest -q

# make dev's processes on a fresh home for SOAK_HOURS with the demo feed on and a CPU burner beside them;
# asserts no incident on the product itself, no failed run, schedules on time, live forecasts, no leak;
# then screenshots of the key pages (after the judgement: viewing pages grows the webserver)
SOAK_HOURS ?= 2
soak: lock-check venv
	$(BIN)/python tools/soak.py --hours $(SOAK_HOURS) --report soak-report.json --screenshots soak-screenshots

bench: venv system-deps
	$(BIN)/python benchmarks/bench_store.py

clean:
	rm -rf $(VENV) .dagster_home .rhythm
