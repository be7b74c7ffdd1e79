"""Intra-op threads of a training step: the chooser, its safety rules, and that it is harmless."""

import threading
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import skvae._threads as threads
from skvae import VAEEstimator
from skvae._threads import ThreadChooser, may_set_threads, step_threads
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


def _run_chooser(step_seconds, n_steps=20, one_thread_steps=3):
    """Drive a ThreadChooser with a fake clock; step_seconds maps thread count -> duration."""
    clock = [0.0]
    chooser = ThreadChooser(
        2,
        probe_steps=3,
        recheck_seconds=1.0,
        clock=lambda: clock[0],
        one_thread_steps=one_thread_steps,
    )
    used = []
    previous = torch.get_num_threads()
    try:
        for _ in range(n_steps):
            chooser.before_step()
            used.append(torch.get_num_threads())
            clock[0] += step_seconds[torch.get_num_threads()]
            chooser.after_step()
    finally:
        torch.set_num_threads(previous)
    return chooser, used


def test_thread_chooser_keeps_one_thread_when_two_are_slower(two_threads):
    # As on a loaded machine: two threads wait at their barriers.
    chooser, used = _run_chooser({2: 0.050, 1: 0.002})
    assert used[:6] == [2, 2, 2, 1, 1, 1]  # both settings are probed with real steps
    assert chooser.chosen == 1 and set(used[6:]) == {1}


def test_thread_chooser_keeps_two_threads_when_they_are_faster_and_rechecks(two_threads):
    chooser, used = _run_chooser({2: 0.010, 1: 0.018}, n_steps=200)
    assert chooser.chosen == 2
    # After recheck_seconds (1 s here) of training the probe runs again.
    assert used.count(1) > 3
    assert used[6:20] == [2] * 14


def test_thread_chooser_times_fewer_steps_on_one_thread(two_threads):
    # On idle cores the one-thread steps are the slow ones: only 2 of them per probe here.
    chooser, used = _run_chooser({2: 0.010, 1: 0.018}, n_steps=200, one_thread_steps=2)
    assert used[:5] == [2, 2, 2, 1, 1] and used[5:20] == [2] * 15
    assert chooser.chosen == 2
    chooser, used = _run_chooser({2: 0.050, 1: 0.002}, one_thread_steps=2)
    assert chooser.chosen == 1 and set(used[3:]) == {1}


def test_thread_chooser_ignores_the_first_step_and_needs_a_clear_win():
    chooser = ThreadChooser(2)
    # The first two-thread step paid for a switch; without it two threads are faster.
    assert chooser.choose({2: [1.0, 0.01, 0.01], 1: [0.02, 0.02, 0.02]}) == 2
    # One thread 5% faster is within the timing noise: keep the process's threads.
    assert chooser.choose({2: [0.01, 0.010, 0.010], 1: [0.01, 0.0095, 0.0095]}) == 2
    assert chooser.choose({2: [0.01, 0.010, 0.010], 1: [0.01, 0.005, 0.005]}) == 1


def _large_data(kind):
    """2000 x 200 rows: with (256, 256) hidden layers a step is worth the chooser."""
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
def test_one_or_two_threads_train_bitwise_the_same_model(
    monkeypatch, two_threads, sparse_builds, kind
):
    monkeypatch.setattr(threads, "may_set_threads", _on_main_thread)
    built = sparse_builds
    fits, used = {}, {}
    for n in (1, 2):
        used[n] = []

        def before_step(self, n=n):
            self._set(n)
            used[n].append(torch.get_num_threads())

        monkeypatch.setattr(ThreadChooser, "before_step", before_step)
        monkeypatch.setattr(ThreadChooser, "after_step", lambda self: None)
        fits[n] = _large_fit(kind)
        assert torch.get_num_threads() == 2  # the process's setting is back
    # The chooser ran every step, on the forced number of threads.
    assert used[1] and set(used[1]) == {1}
    assert used[2] and set(used[2]) == {2}
    assert len(built) == 2 and all((b is not None) == (kind == "binary") for b in built)
    one, two = fits[1].module_.state_dict(), fits[2].module_.state_dict()
    assert one.keys() == two.keys()
    for name, value in one.items():
        assert torch.equal(value, two[name]), name
    X, _ = _large_data(kind)
    assert np.array_equal(fits[1].transform(X), fits[2].transform(X))


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
    # A small model would train on one thread, a large one probe one and two.
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
        with step_threads(n_weights, 128, torch.device("cpu")) as chooser:
            assert chooser is None and torch.get_num_threads() == 2
    assert spy.call_count == 0
