# The webhooks workshop kit. `make demo` and `make test` do all the set-up they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lab doctor screenshots clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed; this is " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: install
	$(BIN)/python -m workshop demo

test: install
	$(BIN)/python -m pytest

lab: install
	$(BIN)/jupyter lab notebooks/

doctor: install
	$(BIN)/python -m workshop doctor

screenshots: install
	$(BIN)/python -m workshop screenshots

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
