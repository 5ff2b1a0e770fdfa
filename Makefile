# Two commands do all the set-up on a fresh machine: `make study` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= runs/quick

.PHONY: study test smoke bench clean venv venv-ray

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch is pinned first (a CPU build on this machine's disk); the project accepts a range.
$(STAMP): $(VENV)/bin/python pyproject.toml
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# the optional Ray backend (`taskalign study --backend ray`); .ci/run installs it for its test
venv-ray: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,ray]"

study: $(STAMP)
	$(VENV)/bin/taskalign study --preset quick --out $(OUT)

smoke: $(STAMP)
	$(VENV)/bin/taskalign study --preset smoke --out runs/smoke

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/phantom.py
	$(PY) bench/mmd.py
	$(PY) bench/real_io.py
	$(PY) bench/host_memory.py

clean:
	rm -rf $(VENV) runs
