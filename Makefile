# The two commands of the README. Each creates .venv when it is missing.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: run test lint clean-venv

run: $(STAMP)
	$(PY) -m tasks.run_default

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# torch goes in first and exactly: a bare `torch` (also pulled by smplx) fetches GBs of CUDA.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
