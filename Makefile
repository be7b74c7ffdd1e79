# Two entry points for a newcomer: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo examples test lint bench clean

# torch==2.13.0 first: it is the CPU build on this machine's disk. The package's own
# requirement is a range (torch>=2.2), which an installed 2.13.0 already satisfies.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,plot,dask,skops]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo_digits.py

# Every script of the gallery, each writing its figures into output/ (several minutes).
examples: $(STAMP)
	for script in examples/plot_*.py; do $(PY) $$script || exit 1; done

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Every benchmark whose numbers the README reports (about 25 minutes on 2 idle cores).
bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[benchmark]"
	$(PY) benchmarks/quality.py
	$(PY) benchmarks/bench_fit.py
	$(PY) benchmarks/bench_grid.py
	$(PY) benchmarks/bench_scale.py
	$(PY) benchmarks/bench_dask.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_impute.py

clean:
	rm -rf $(VENV) *.egg-info output
