# make test: the whole suite on the newest Django; make demo: see the queue work.
PYTHON ?= $(shell .ci/find-python)
PYTHON_DEFAULT ?= python3
VENV := .venv
VENV52 := .venv-dj52
PYTEST_ARGS ?=

.PHONY: test test-dj52 lint format demo clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -U pip
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $@

$(VENV52)/.installed: pyproject.toml
	test -x $(VENV52)/bin/python || $(PYTHON_DEFAULT) -m venv $(VENV52)
	$(VENV52)/bin/python -m pip install -q -U pip
	$(VENV52)/bin/python -m pip install -q -e '.[dev]' 'django>=5.2,<6'
	touch $@

test: $(VENV)/.installed
	$(VENV)/bin/python -c 'import django, sys; print("Django", django.get_version(), "on Python", sys.version.split()[0])'
	$(VENV)/bin/python -m pytest -m 'not slow' $(PYTEST_ARGS)

test-dj52: $(VENV52)/.installed
	$(VENV52)/bin/python -c 'import django, sys; print("Django", django.get_version(), "on Python", sys.version.split()[0])'
	$(VENV52)/bin/python -m pytest -m 'not slow' $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: $(VENV)/.installed
	$(VENV)/bin/python testproject/demo.py

clean:
	rm -rf $(VENV) $(VENV52) testproject/var .pytest_cache
