# The webhooks workshop kit. `make demo` and `make test` do all the set-up they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.installed-test-stamp
# A folder of wheels (`make wheelhouse`, or one copied from a USB stick). When it is there, the attendee
# install takes everything from it and nothing from the network.
WHEELHOUSE ?= wheelhouse
OFFLINE = $(if $(wildcard $(WHEELHOUSE)/*.whl),--no-index --find-links $(WHEELHOUSE))
# No bytecode up front (100 MB): Python writes it for each module the first time it is imported.
PIP := $(BIN)/python -m pip install --quiet --no-compile

.PHONY: install install-test demo test lint lab doctor screenshots wheelhouse clean

# What attendees need: requirements.txt.
install: $(STAMP)

# What the kit's tests and checks need on top: requirements-test.txt.
install-test: $(TEST_STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed; this is " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(OFFLINE) --upgrade pip

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	@$(if $(OFFLINE),echo "Installing from $(WHEELHOUSE)/ alone: no network needed")
	$(PIP) $(OFFLINE) -r requirements.txt
	$(PIP) $(OFFLINE) --no-deps -e .
	touch $@

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PIP) -r requirements-test.txt
	@# The suite starts many Python processes; with bytecode ready, none compiles (PYTHONDONTWRITEBYTECODE).
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null
	touch $@

demo: install
	$(BIN)/python -m workshop demo

test: install-test lint
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check solutions workshop tests
	$(BIN)/mypy solutions workshop

lab: install
	$(BIN)/jupyter lab notebooks/

doctor: install
	$(BIN)/python -m workshop doctor

screenshots: install-test
	$(BIN)/python -m workshop screenshots

# Mutation testing (mutmut) of solutions/ with the fast tests: each module's score and every surviving mutant.
# A report, like the bench, not part of `make test` (about seven minutes). ONLY="store intake" mutates just those.
.PHONY: mutation
mutation: install-test
	$(BIN)/python workshop/tools/mutation.py $(foreach module,$(ONLY),--only $(module))

# Every wheel the attendee set needs, for Linux, macOS and Windows, Python 3.10 to 3.13, for USB sticks.
wheelhouse: | $(BIN)/python
	$(BIN)/python workshop/tools/wheelhouse.py --dest $(WHEELHOUSE)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
