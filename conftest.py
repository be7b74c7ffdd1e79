"""Test set-up shared by tests/ and the doctests of skvae/ (pytest reads it for both)."""

import sys

import pytest
import torch
from threadpoolctl import threadpool_limits

try:
    import matplotlib
except ImportError:  # the plotting tests and doctests skip themselves
    matplotlib = None
else:
    # Figures are drawn off-screen: no window opens, whatever the machine's default backend.
    matplotlib.use("Agg")


try:
    import mlflow
    import skops
except ImportError:  # skvae.serving needs both; its tests skip themselves
    mlflow = skops = None

# The doctests of skvae/: the serving module imports MLflow, and MLflow runs its model code.
collect_ignore = ["skvae/_mlflow_model.py"] + (["skvae/serving.py"] if mlflow is None else [])


def pytest_collection_modifyitems(config, items):
    # The doctests of skvae.plotting draw; without the plot extra there is nothing to check.
    if matplotlib is None:
        skip = pytest.mark.skip(reason='needs matplotlib: pip install "skvae[plot]"')
        for item in items:
            if item.nodeid.startswith("skvae/plotting/"):
                item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # torch, and numpy's and scipy's BLAS, on one intra-op thread: the tests' models and
    # matrices are small, and on a busy 2-core machine a second thread waits for its partner's
    # time slice at every barrier, many times the work. tests/test_threads.py sets two threads
    # where it tests them, and checks that training gives the same model on either.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    # Only when a test drew something: importing pyplot here would slow every test.
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
