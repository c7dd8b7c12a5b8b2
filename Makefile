# The two commands: `make run` (the platform on SQLite with a seeded municipality) and
# `make test` (the whole suite). Both set up their own environment first.
PYTHON ?= python3
UV_VERSION = 0.13.8
UV = .tools/bin/uv
DATA ?= var/demo
PORT ?= 8000
RESIDENTS ?= 10000
export UV_PYTHON_DOWNLOADS = never
export UV_PYTHON = $(shell command -v $(PYTHON))

.PHONY: run test lint typecheck bench setup clean
setup: .venv/.synced

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

run: .venv/.synced
	.venv/bin/mynumber serve --seed-residents $(RESIDENTS) --data-dir $(DATA) --port $(PORT)

lint: .venv/.synced
	.venv/bin/ruff check src tests benchmarks examples
	.venv/bin/ruff format --check src tests benchmarks examples

typecheck: .venv/.synced
	.venv/bin/mypy

test: lint typecheck
	.venv/bin/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: .venv/.synced
	.venv/bin/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf .venv .tools var
