# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install redis postgres datasets bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,images]'
	touch $@

install: $(BIN)/.installed

redis:
	@bash scripts/ensure-redis.sh

postgres:
	@bash scripts/ensure-postgres.sh

datasets:
	@bash scripts/ensure-datasets.sh

test: install redis postgres datasets
	$(BIN)/python -m pytest

demo: install redis datasets
	@$(BIN)/python scripts/demo.py

bench: install redis
	@bash scripts/bench.sh $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
