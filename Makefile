# Two entry points for a newcomer: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo examples test test-quick lint docs bench clean

# torch==2.13.0 first: it is the CPU build on this machine's disk. The package's own
# requirement is a range (torch>=2.2), which an installed 2.13.0 already satisfies.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,plot,dask,skops,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo_digits.py

# Every script of the gallery, each writing its figures into output/ (several minutes).
examples: $(STAMP)
	for script in examples/plot_*.py; do $(PY) $$script || exit 1; done

# The whole suite, slow tests included, one pytest worker per core: CI runs this (.ci/run).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n auto --dist worksteal

# The suite without the tests marked slow (examples, guide code blocks, dask, docs build).
test-quick: $(STAMP)
	$(PY) -m pytest -n auto --dist worksteal -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The site in docs/_build/html, warnings as errors, with every gallery example run (one per core).
docs: $(STAMP)
	$(PY) -m sphinx -j auto -W --keep-going -b html docs docs/_build/html

# The first seven benchmarks of benchmarks/README.md in full mode (about half an hour on 2 idle
# cores), each writing benchmarks/results/<name>.json; then README.md is rendered from them.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[benchmark]"
	$(PY) benchmarks/bench_fit.py --repeats 9
	$(PY) benchmarks/bench_transform.py
	$(PY) benchmarks/bench_grid.py
	$(PY) benchmarks/bench_scale.py
	$(PY) benchmarks/bench_dask.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_impute.py
	$(PY) benchmarks/quality.py --threads 1
	$(PY) benchmarks/render.py

clean:
	rm -rf $(VENV) *.egg-info output examples/output docs/_build docs/auto_examples docs/generated \
		docs/sg_execution_times.rst
