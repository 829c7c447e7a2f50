# The two commands a newcomer needs: `make run` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck pytest bench clean browser

$(STAMP): pyproject.toml setup.py src/trustplane/discovery/parsers/_tokens.pyx
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Start TrustPlane on its embedded default (SQLite in ./.trustplane, demo tenant seeded, admin secret printed once).
run: install
	$(BIN)/trustplane serve --demo --host 127.0.0.1 --port 8000

## Lint, type-check and run the whole suite on SQLite and PostgreSQL (PostgreSQL is required when CI=true).
test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy src

## Headless Chromium for the sign-in browser tests comes from Debian's package (Playwright drives it by path;
## it never downloads a browser of its own).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

pytest: install browser
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

## Every benchmark (loopback load on PostgreSQL); figures go to docs/benchmarks.md by hand with date and machine.
bench: install
	$(BIN)/python benchmarks/run_all.py --only all

clean:
	rm -rf $(VENV) .trustplane .pytest_cache .mypy_cache .ruff_cache
