# make test: the whole suite on the newest Django; make demo: see the queue work; make docs:
# the manual (docs/_build/html/index.html).
PYTHON ?= $(shell .ci/find-python)
PYTHON_DEFAULT ?= python3
VENV := .venv
VENV52 := .venv-dj52
VENVDOCS := .venv-docs
PYTEST_ARGS ?=

.PHONY: test test-cluster soak test-dj52 browser-deps screenshots lint format demo bench docs clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -U pip
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $@

$(VENV52)/.installed: pyproject.toml
	test -x $(VENV52)/bin/python || $(PYTHON_DEFAULT) -m venv $(VENV52)
	$(VENV52)/bin/python -m pip install -q -U pip
	$(VENV52)/bin/python -m pip install -q -e '.[dev,tasks]' 'django>=5.2,<6'
	touch $@

# Sphinx and its theme only (the docs extra), apart from the test venvs.
$(VENVDOCS)/.installed: pyproject.toml
	test -x $(VENVDOCS)/bin/python || $(PYTHON) -m venv $(VENVDOCS)
	$(VENVDOCS)/bin/python -m pip install -q -U pip
	$(VENVDOCS)/bin/python -m pip install -q -e '.[docs]'
	touch $@

test: $(VENV)/.installed browser-deps
	$(VENV)/bin/python -c 'import django, sys; print("Django", django.get_version(), "on Python", sys.version.split()[0])'
	$(VENV)/bin/python -m pytest -m 'not slow' $(PYTEST_ARGS)

# tests/cluster against a real local Redis Cluster (3 primaries + 3 replicas) and Sentinel group,
# with failovers and a slot migration (~2 min on 2 cores, so not part of `make test`).
test-cluster: $(VENV)/.installed
	CONVOY_CLUSTER_TESTS=1 $(VENV)/bin/python -m pytest tests/cluster -m 'not slow' $(PYTEST_ARGS)

# The long tier of tests/faults and tests/cluster: thousands of jobs under kill storms (also on
# a cluster and behind Sentinel), 8 x 5,000 adds, a longer model test (~15 min on 2 cores).
# `make test` and `make test-cluster` run the fast tier of the same scenarios.
soak: $(VENV)/.installed
	$(VENV)/bin/python -m pytest tests/faults -m slow $(PYTEST_ARGS)
	CONVOY_CLUSTER_TESTS=1 $(VENV)/bin/python -m pytest tests/cluster -m slow $(PYTEST_ARGS)

test-dj52: $(VENV52)/.installed browser-deps
	$(VENV52)/bin/python -c 'import django, sys; print("Django", django.get_version(), "on Python", sys.version.split()[0])'
	$(VENV52)/bin/python -m pytest -m 'not slow' $(PYTEST_ARGS)

# The admin's browser test drives Debian's chromium (playwright comes with the dev extra; its
# own browser downloads are never used). Installed with apt-get when missing and we are root.
CHROMIUM ?= /usr/bin/chromium
browser-deps:
	@test -x $(CHROMIUM) || if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "browser-deps: no $(CHROMIUM); run 'sudo apt-get install chromium' or the browser test is skipped"; \
	fi

# Retake docs/admin-overview.png and docs/admin-queue.png (the browser test takes them).
screenshots: $(VENV)/.installed browser-deps
	CONVOY_SCREENSHOTS=docs $(VENV)/bin/python -m pytest tests/browser -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: $(VENV)/.installed
	$(VENV)/bin/python testproject/demo.py

# One table of throughput, latency and memory, against a private redis-server (~4 min).
bench: $(VENV)/.installed
	$(VENV)/bin/python -m benchmarks $(BENCH_ARGS)

# The manual as HTML in docs/_build/html, every warning an error. Its Python examples are run
# by the suite (tests/test_docs_examples.py), not here.
docs: $(VENVDOCS)/.installed
	$(VENVDOCS)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) $(VENV52) $(VENVDOCS) testproject/var .pytest_cache docs/_build
