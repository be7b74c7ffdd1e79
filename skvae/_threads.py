"""How many intra-op threads a training step uses: one for small steps, the faster for large.

Two threads meet at a barrier in every operation. For small steps a second thread only
adds that synchronisation, and when other processes keep the cores busy a thread waits for
its partner's scheduler slice at each barrier, so that a step can take many times longer
than on one thread; on idle cores the threads speed large steps up. So small models train
on one thread, and larger ones time real training steps on each setting and keep the
faster (``ThreadChooser``). ``benchmarks/bench_fit.py`` measures what this costs and buys.

The choice never changes the model: torch's CPU kernels used in training give bitwise the
same results on one thread and on two (a test trains with each forced and compares).

Changing the count cannot slow or change another thread's torch work. With torch's
OpenMP backend (its CPU builds on Linux) ``torch.set_num_threads`` sets the calling
thread's OpenMP and MKL thread counts, not the other threads': a fit in one thread of a
thread pool leaves its neighbours' counts alone (a test checks it). The one thread it can
reach is one that makes its very first torch call during the fit, which starts with the
fit's count. With another backend the count is process-wide, and it is changed only when
the fit runs on the main thread and that is the only thread alive.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import torch

__all__ = ["ThreadChooser", "step_threads"]

#: Below this many (weights x batch rows) a training step is too small to share between
#: threads: a second thread then only adds synchronisation.
MIN_WORK_PER_THREAD = 2**20
#: One thread is kept only when its steps take less than this fraction of the others'.
ONE_THREAD_MARGIN = 0.9


@functools.cache
def _per_thread_counts() -> bool:
    """Whether torch's thread count is per thread (its OpenMP backend)."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def may_set_threads() -> bool:
    """Whether changing torch's thread count here cannot affect another thread's work."""
    if _per_thread_counts():
        return True
    return threading.current_thread() is threading.main_thread() and threading.active_count() == 1


class ThreadChooser:
    """Train on one intra-op thread or on all the process has, whichever runs faster now.

    ``probe_steps`` real training steps on all threads and ``one_thread_steps`` on one
    (the first of each not counted, as it pays for the switch); one thread is kept only
    when its mean is clearly lower (a mean, because under load two threads mostly take a
    few milliseconds but now and then far longer). One thread meets no barrier, so its
    steps vary little and fewer of them are timed. The probe repeats every
    ``recheck_seconds`` of training, as the load changes. Probing steps are training steps.
    """

    def __init__(
        self,
        n_threads: int,
        probe_steps: int = 8,
        recheck_seconds: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
        one_thread_steps: int = 4,
    ) -> None:
        self.clock = clock
        self.n_threads = n_threads
        self.probe_steps = probe_steps
        self.one_thread_steps = one_thread_steps
        self.recheck_seconds = recheck_seconds
        self.chosen = n_threads
        self._plan: list[int] = []
        self._times: dict[int, list[float]] = {}
        self._next_probe = 0.0
        self._current = torch.get_num_threads()
        self._start = 0.0

    def _set(self, n: int) -> None:
        if n != self._current:
            torch.set_num_threads(n)
            self._current = n

    def before_step(self) -> None:
        now = self.clock()
        if not self._plan and now >= self._next_probe:
            self._plan = [self.n_threads] * self.probe_steps + [1] * self.one_thread_steps
            self._times = {self.n_threads: [], 1: []}
        self._set(self._plan[0] if self._plan else self.chosen)
        self._start = now

    def after_step(self) -> None:
        if not self._plan:
            return
        n = self._plan.pop(0)
        self._times[n].append(self.clock() - self._start)
        if not self._plan:
            self.chosen = self.choose(self._times)
            self._next_probe = self.clock() + self.recheck_seconds

    def choose(self, times: dict[int, list[float]]) -> int:
        """One thread only when its steps were clearly faster (mean, first step dropped)."""
        means = {n: statistics.fmean(t[1:] or t) for n, t in times.items() if t}
        if 1 in means and self.n_threads in means:
            if means[1] < ONE_THREAD_MARGIN * means[self.n_threads]:
                return 1
        return self.n_threads


@contextlib.contextmanager
def step_threads(n_weights: int, batch_size: int, device: torch.device) -> Iterator:
    """Yield a ThreadChooser for CPU models worth two threads, else None.

    Small models train on one thread, larger ones on what runs faster; the process's
    thread count is restored at the end. Nothing changes where ``may_set_threads`` is false.
    """
    previous = torch.get_num_threads()
    chooser = None
    if device.type == "cpu" and previous > 1 and may_set_threads():
        if n_weights * batch_size < MIN_WORK_PER_THREAD:
            torch.set_num_threads(1)
        else:
            chooser = ThreadChooser(previous)
    try:
        yield chooser
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
