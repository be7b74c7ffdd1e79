"""Intra-op threads of a training step: the size rule, its safety rules, its harmlessness."""

import threading
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

import skvae._threads as threads
from skvae import VAEEstimator
from skvae._threads import MIN_WORK_PER_THREAD, may_set_threads, step_threads
from skvae._trainer import Trainer


@pytest.fixture
def two_threads():
    """torch on two intra-op threads for the test, the process's setting restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    if torch.get_num_threads() < 2:
        torch.set_num_threads(previous)
        pytest.skip("torch cannot run two intra-op threads here")
    yield
    torch.set_num_threads(previous)


def _on_main_thread():
    # may_set_threads without its "only thread alive" half: idle threads that earlier tests
    # leave behind (tqdm's monitor after a verbose fit) would otherwise turn the chooser off.
    return threading.current_thread() is threading.main_thread()


def _large_data(kind):
    """2000 x 200 rows: with (256, 256) hidden layers a step is worth two threads."""
    rng = np.random.default_rng(0)
    if kind == "binary":  # about 10% ones: the sparse first layer
        return (rng.random((2000, 200)) < 0.1).astype(np.float64), "bernoulli"
    W = rng.normal(size=(5, 200))
    return rng.normal(size=(2000, 5)) @ W + rng.normal(size=(2000, 200)), "gaussian"


def _large_fit(kind="binary", max_iter=3):
    X, likelihood = _large_data(kind)
    vae = VAEEstimator(
        likelihood=likelihood, hidden_layer_sizes=(256, 256), max_iter=max_iter, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return vae.fit(X)


@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_a_large_model_trains_on_the_process_threads_and_to_the_same_model(
    monkeypatch, two_threads, sparse_builds, kind
):
    # These shapes' kernels reduce in the same order on one thread and on two.
    monkeypatch.setattr(threads, "may_set_threads", _on_main_thread)
    built = sparse_builds
    fits, used = {}, {}
    real_step = Trainer.train_step
    for n in (1, 2):
        torch.set_num_threads(n)
        used[n] = []

        def recording(self, batch, eps, kl_weight, n=n):
            used[n].append(torch.get_num_threads())
            return real_step(self, batch, eps, kl_weight)

        with mock.patch.object(Trainer, "train_step", recording):
            fits[n] = _large_fit(kind)
        assert torch.get_num_threads() == n  # the process's setting is back
    assert used[1] and set(used[1]) == {1}
    assert used[2] and set(used[2]) == {2}
    assert len(built) == 2 and all((b is not None) == (kind == "binary") for b in built)
    one, two = fits[1].module_.state_dict(), fits[2].module_.state_dict()
    assert one.keys() == two.keys()
    for name, value in one.items():
        assert torch.equal(value, two[name]), name
    X, _ = _large_data(kind)
    assert np.array_equal(fits[1].transform(X), fits[2].transform(X))


def test_the_thread_count_is_a_rule_of_the_step_size_never_a_timing(monkeypatch, two_threads):
    monkeypatch.setattr(threads, "may_set_threads", _on_main_thread)
    cpu = torch.device("cpu")
    with step_threads(MIN_WORK_PER_THREAD // 128 - 1, 128, cpu) as n:
        assert n == torch.get_num_threads() == 1
    with step_threads(MIN_WORK_PER_THREAD // 128, 128, cpu) as n:
        assert n == torch.get_num_threads() == 2
    assert torch.get_num_threads() == 2


def test_a_default_fit_is_the_same_model_on_one_thread_and_on_two(monkeypatch, two_threads):
    # A 10-feature table at the defaults: the decoder's last weight gradient is a product
    # with 10 output rows, which the BLAS reduces in an order that can depend on the thread
    # count; a thread choice that times steps on two threads made the model depend on load.
    monkeypatch.setattr(threads, "may_set_threads", _on_main_thread)
    X = StandardScaler().fit_transform(load_diabetes().data)
    fits = {}
    for n in (1, 2):
        torch.set_num_threads(n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[n] = VAEEstimator(max_iter=30, random_state=0).fit(X)
    one, two = fits[1].module_.state_dict(), fits[2].module_.state_dict()
    for name, value in one.items():
        assert torch.equal(value, two[name]), name


def _small_fit():
    X = np.random.default_rng(0).normal(size=(200, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        VAEEstimator(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X)


def _in_threads(*targets, timeout=600):
    """Run each target in its own thread; re-raise the first error on this one."""
    errors = []

    def guarded(target):
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout)
    assert not any(worker.is_alive() for worker in workers), "a thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("size", ["small", "large"])
def test_a_fit_where_threads_may_not_be_set_never_sets_them(monkeypatch, two_threads, size):
    # A small model would train on one thread, a large one on the process's two.
    monkeypatch.setattr(threads, "may_set_threads", lambda: False)
    fit = _small_fit if size == "small" else lambda: _large_fit(max_iter=1)
    with mock.patch.object(torch, "set_num_threads", wraps=torch.set_num_threads) as spy:
        _in_threads(fit)
    assert spy.call_count == 0
    assert torch.get_num_threads() == 2


def test_a_fit_in_another_thread_leaves_the_other_threads_counts_alone(two_threads):
    counts = {}
    ready, fitted = threading.Event(), threading.Event()

    def neighbour():
        torch.ones(4).sum()  # a thread that already uses torch
        counts["before"] = torch.get_num_threads()
        ready.set()
        fitted.wait(600)
        counts["after"] = torch.get_num_threads()

    def fitter():
        ready.wait(600)
        try:
            _small_fit()
        finally:
            fitted.set()

    _in_threads(neighbour, fitter)
    assert counts["after"] == counts["before"]
    assert torch.get_num_threads() == 2


def test_a_fit_on_the_main_thread_sets_one_thread_for_a_small_model_and_restores(
    monkeypatch, two_threads
):
    monkeypatch.setattr(threads, "may_set_threads", _on_main_thread)
    with mock.patch.object(torch, "set_num_threads", wraps=torch.set_num_threads) as spy:
        _small_fit()
    assert spy.call_args_list == [mock.call(1), mock.call(2)]
    assert torch.get_num_threads() == 2
    # Also when training fails half-way.
    real_step = Trainer.train_step
    n_steps = []

    def failing(self, batch, eps, kl_weight):
        n_steps.append(torch.get_num_threads())
        if len(n_steps) == 3:
            raise RuntimeError("failed step")
        return real_step(self, batch, eps, kl_weight)

    with mock.patch.object(Trainer, "train_step", failing), pytest.raises(RuntimeError):
        _small_fit()
    assert n_steps == [1, 1, 1] and torch.get_num_threads() == 2


def test_threads_may_be_set_on_the_main_thread_alone(monkeypatch):
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert may_set_threads()


@pytest.mark.parametrize("n_weights", [10, 2**20])
def test_step_threads_changes_nothing_where_it_may_not(monkeypatch, two_threads, n_weights):
    monkeypatch.setattr(threads, "may_set_threads", lambda: False)
    with mock.patch.object(torch, "set_num_threads", wraps=torch.set_num_threads) as spy:
        with step_threads(n_weights, 128, torch.device("cpu")) as n:
            assert n == torch.get_num_threads() == 2
    assert spy.call_count == 0
