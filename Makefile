# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the project into it (torch first, from pip's local cache of wheels).
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
ROWS ?= 500
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export FASHION_DB_URI ?= $(CURDIR)/data/lancedb
export FASHION_SOURCE_DIR ?= $(CURDIR)/data/source
export LANCE_LOG ?= error

.PHONY: install demo test ui lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The main job: sample data, every asset, a search. Pretrained models by default;
# on an offline machine: FASHION_MODEL_PROFILE=tiny make demo
demo: install
	$(BIN)/fashion-assets sample $(FASHION_SOURCE_DIR) --rows $(ROWS)
	$(BIN)/fashion-assets ingest
	$(BIN)/fashion-assets refresh
	$(BIN)/fashion-assets index
	$(BIN)/fashion-assets status
	$(BIN)/fashion-assets search "navy blue shirt" --k 5

test: install
	$(BIN)/pytest -q

ui: install
	mkdir -p $(DAGSTER_HOME) && cp -n dagster.yaml $(DAGSTER_HOME)/ || true
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf data .dagster_home
