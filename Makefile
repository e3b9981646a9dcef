# The README's two commands. Both build .venv from scratch when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is installed first and pinned, so nothing can pull a newer or CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: demo test install install-test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[test]' $(TORCH_PIN)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/hipseg demo --out demo_output

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo_output
