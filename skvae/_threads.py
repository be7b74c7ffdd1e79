"""How many intra-op threads a training step uses: a rule of the step's size, never a timing.

Two threads meet at a barrier in every operation, so a small step runs faster on one; on
idle cores a large one (from about ``MIN_WORK_PER_THREAD`` weights x batch rows: an
MNIST-sized model) runs faster on all the threads the process has. The choice is a rule of
the model's size and the process's thread setting, not a measurement of the steps: torch's
CPU kernels do not all give bitwise the same results on one thread and on two (a matrix
product with a few output rows can reduce in an order that depends on the thread count),
so a choice that timed steps would make the model depend on what else runs on the
machine. A model trained with the same ``random_state`` is the same whatever the load;
small models (most tables) train on one thread whatever the setting, so they are also the
same on one thread and on two. ``benchmarks/bench_fit.py`` measures a large model's fit.

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
import threading
from collections.abc import Iterator

import torch

__all__ = ["may_set_threads", "step_threads"]

#: Below this many (weights x batch rows) a training step runs on one thread: a second one
#: gains little there on idle cores and loses much when other work keeps the cores busy.
MIN_WORK_PER_THREAD = 2**24


@functools.cache
def _per_thread_counts() -> bool:
    """Whether torch's thread count is per thread (its OpenMP backend)."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def may_set_threads() -> bool:
    """Whether changing torch's thread count here cannot affect another thread's work."""
    if _per_thread_counts():
        return True
    return threading.current_thread() is threading.main_thread() and threading.active_count() == 1


@contextlib.contextmanager
def step_threads(n_weights: int, batch_size: int, device: torch.device) -> Iterator[int]:
    """Train small CPU models on one thread, larger ones on the process's; yield the count.

    The process's thread count is restored at the end. Nothing changes where
    ``may_set_threads`` is false.
    """
    previous = torch.get_num_threads()
    small = n_weights * batch_size < MIN_WORK_PER_THREAD
    if device.type == "cpu" and previous > 1 and small and may_set_threads():
        torch.set_num_threads(1)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
