"""The minibatch training loop: Adam, KL warm-up, early stopping, history.

The data is one tensor; an epoch is a random permutation of row indices cut into batches,
with no per-sample Dataset or DataLoader. Each step is a small overridable function.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ._module import SparseRows, VAEModule

try:  # the function AdamW.step runs; None where torch does not have it
    from torch.optim.adamw import adamw as _adamw
except ImportError:  # pragma: no cover
    _adamw = None

__all__ = [
    "TrainingConfig",
    "History",
    "SparseInputs",
    "encode_all",
    "make_optimizer",
    "sparse_inputs",
    "train",
]


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainingConfig:
    batch_size: int = 128
    max_iter: int = 200
    beta: float = 1.0
    kl_warmup_iter: int = 0
    early_stopping: bool = True
    n_iter_no_change: int = 10
    tol: float = 1e-4
    learning_rate_init: float = 1e-3
    verbose: int = 0
    # Autocast dtype of the training step on the CPU (None: plain float32).
    autocast_dtype: torch.dtype | None = None
    # Added to per-row ELBOs so that curves are in nats in the user's units.
    log_det: float = 0.0
    # Epochs already run, where the KL warm-up resumes (partial_fit: one epoch per call).
    first_epoch: int = 0
    # Polyak averaging needs many steps in one call; partial_fit keeps Adam's last iterate.
    average_weights: bool = True
    # False when the training data is known to have no NaN: steps then skip the check.
    has_missing: bool = True


@dataclass
class History:
    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_validation_score: float | None = None
    best_loss: float | None = None
    n_iter: int = 0
    converged: bool = False
    interrupted: bool = False


def make_optimizer(
    module: VAEModule, learning_rate_init: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """AdamW, fused where the device supports it (about 1.4x per step on CPU).

    Weight decay (decoupled, Loshchilov and Hutter 2019) applies to the weight matrices
    of the encoder and decoder only: not to biases, nor to the likelihood's own
    parameters (noise variances, dispersions), whose scale is the data's.
    """
    networks = (module.encoder, module.decoder)
    decayed = [p for net in networks for p in net.parameters() if p.ndim >= 2]
    ids = {id(p) for p in decayed}
    others = [p for p in module.parameters() if id(p) not in ids]
    groups = [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": others, "weight_decay": 0.0},
    ]
    try:
        return torch.optim.AdamW(groups, lr=learning_rate_init, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=learning_rate_init, foreach=True)


class FusedAdamWStep:
    """``optimizer.step()`` of a fused AdamW without its per-call Python bookkeeping.

    After the optimizer's own first step has made Adam's state, each step hands the
    same state tensors, the current gradients and each group's settings to
    ``torch.optim.adamw.adamw``, the function ``AdamW.step`` calls itself: the same
    arithmetic, about 18 us less per step on a 784-400-20 model (146 against 164 us).
    Anything else (a non-fused optimizer, a missing gradient) goes through
    ``optimizer.step()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self._groups: list[tuple] | None = None
        self.fast = (
            _adamw is not None
            and type(optimizer) is torch.optim.AdamW
            and all(
                group.get("fused") and not group.get("amsgrad") and not group.get("maximize")
                for group in optimizer.param_groups
            )
        )

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        groups = self._groups
        if groups is not None:
            grads = [[p.grad for p in group[0]] for group in groups]
            if all(g is not None for gs in grads for g in gs):
                for (params, exp_avgs, exp_avg_sqs, steps, settings), gs in zip(
                    groups, grads, strict=True
                ):
                    beta1, beta2 = settings["betas"]
                    _adamw(
                        params,
                        gs,
                        exp_avgs,
                        exp_avg_sqs,
                        [],
                        steps,
                        fused=True,
                        amsgrad=False,
                        beta1=beta1,
                        beta2=beta2,
                        lr=settings["lr"],
                        weight_decay=settings["weight_decay"],
                        eps=settings["eps"],
                        maximize=False,
                    )
                return
        self.optimizer.step()
        if self.fast and groups is None:
            state = self.optimizer.state
            if all(p in state for g in self.optimizer.param_groups for p in g["params"]):
                self._groups = [
                    (
                        list(g["params"]),
                        [state[p]["exp_avg"] for p in g["params"]],
                        [state[p]["exp_avg_sq"] for p in g["params"]],
                        [state[p]["step"] for p in g["params"]],
                        g,
                    )
                    for g in self.optimizer.param_groups
                ]


class WeightAverage:
    """Exponential moving average of a module's weights (Polyak averaging).

    The averaged weights are what validation judges and what training returns: they
    average out the noise of the last steps of Adam. The horizon is ``horizon`` updates, and
    shorter at first, as TensorFlow's ExponentialMovingAverage with ``num_updates`` does,
    so that early averages do not drag the initial weights along.
    """

    def __init__(self, module: VAEModule, horizon: float) -> None:
        self.params = [p for p in module.parameters()]
        # Detached views share storage with the parameters: made once, not every step.
        self._live = [p.detach() for p in self.params]
        self.average = [p.detach().clone() for p in self.params]
        self.decay = 1.0 - 1.0 / max(horizon, 1.0)
        self.n_updates = 0

    @torch.no_grad()
    def update(self) -> None:
        self.n_updates += 1
        decay = min(self.decay, (1 + self.n_updates) / (10 + self.n_updates))
        torch._foreach_lerp_(self.average, self._live, 1.0 - decay)

    @contextlib.contextmanager
    def applied(self):
        """Swap the averaged weights into the module for the duration of the block."""
        with torch.no_grad():
            current = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, current)


#: Horizon of the weight average, in epochs (capped at ``_AVERAGE_MAX_STEPS`` steps).
_AVERAGE_EPOCHS = 30
_AVERAGE_MAX_STEPS = 1000
#: The average takes every this-many-th step's weights (in epochs of 10 steps or more),
#: as SWA samples its iterates: each update reads and writes every weight (45 us per
#: step on a 784-400-20 model, about 2% of it), and successive Adam iterates differ little.
_AVERAGE_EVERY = 2


def train_step(
    module: VAEModule,
    optimizer: torch.optim.Optimizer | FusedAdamWStep,
    x: Tensor,
    eps: Tensor,
    kl_weight: float,
    autocast_dtype: torch.dtype | None = None,
    complete: bool = False,
    sparse: SparseRows | None = None,
) -> Tensor:
    """One Adam step on a batch; returns the batch's summed loss without a device sync.

    ``complete=True``: the batch is known to have no missing values; ``sparse``: the
    non-zero encoder inputs of the batch (both: see VAEModule.loss).
    """
    if autocast_dtype is None:
        loss = module.loss(x, eps, kl_weight, complete, sparse)
    else:
        with torch.autocast(x.device.type, dtype=autocast_dtype):
            loss = module.loss(x, eps, kl_weight, complete, sparse)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach() * x.shape[0]


@torch.no_grad()
def validation_score(module: VAEModule, x: Tensor, eps: Tensor, batch_size: int) -> float:
    """Mean single-sample ELBO over the rows of x, with fixed noise ``eps``."""
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        stop = start + batch_size
        total += module.elbo(x[start:stop], eps[start:stop]).sum().item()
    return total / x.shape[0]


# Below this many (weights x batch rows) a training step is too small to share between
# threads: a second thread then only adds synchronisation, and under load from other
# processes its barriers cost whole scheduler slices (measured: 0.3 ms/step on one thread,
# 80 ms/step on two with the other core busy, for a linear 8-feature model).
_MIN_WORK_PER_THREAD = 2**20


class ThreadChooser:
    """Train on one intra-op thread or on all the process has, whichever runs faster now.

    Two threads meet at a barrier in every operation. When other processes keep the cores
    busy, a thread waits for its partner's scheduler slice at each barrier, and a step can
    take 10 to 200 times longer than on one thread (measured on this project's 2-core
    machine); on idle cores, the threads speed large steps up. So the choice is measured:
    ``probe_steps`` real training steps on all threads and ``one_thread_steps`` on one
    (the first of each not counted, as it pays for the switch), and one thread is kept
    only when its mean is clearly lower (a mean, because under load two threads mostly
    take a few milliseconds but now and then half a second). One thread meets no barrier,
    so its steps vary little and fewer of them are timed: on idle cores they are the slow
    ones, the probe's whole cost. The probe repeats every ``recheck_seconds`` of
    training, as the load changes. No step is wasted: probing steps are training steps.
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
        """One thread only when its steps were clearly faster (mean, first step dropped).

        The margin keeps the process's own thread count when the two are close and the
        few timed steps cannot tell them apart; under load one thread wins by 2x or more.
        """
        means = {n: statistics.fmean(t[1:] or t) for n, t in times.items() if t}
        if 1 in means and self.n_threads in means:
            if means[1] < _ONE_THREAD_MARGIN * means[self.n_threads]:
                return 1
        return self.n_threads


#: One thread is kept only when its steps take less than this fraction of the others'.
_ONE_THREAD_MARGIN = 0.9


@contextlib.contextmanager
def _step_threads(module: VAEModule, batch_size: int, device: torch.device):
    """Yield a ThreadChooser for CPU models worth two threads, else None.

    Small models train on one thread, larger ones on what runs faster (see
    ThreadChooser); the process's thread count is restored at the end.
    """
    n_weights = sum(p.numel() for p in module.parameters())
    previous = torch.get_num_threads()
    chooser = None
    if device.type == "cpu" and previous > 1:
        if n_weights * batch_size < _MIN_WORK_PER_THREAD:
            torch.set_num_threads(1)
        else:
            chooser = ThreadChooser(previous)
    try:
        yield chooser
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


#: The first encoder layer skips zero inputs when at most this fraction of the training
#: rows' encoder inputs is non-zero and there are at least ``_MIN_SPARSE_INPUTS`` of them.
#: On a 784-400 layer (2 threads) the sum of weight rows costs 85 us at a density of 0.13
#: against 425 us for the dense product; it grows with the number of non-zeros.
_MAX_SPARSE_DENSITY = 0.25
_MIN_SPARSE_INPUTS = 64


class SparseInputs:
    """The non-zero encoder inputs of the training rows, row by row (CSR), for one fit.

    Binary images, counts and one-hot categories are mostly zeros; with this, the first
    encoder layer adds up the weight rows of the non-zero inputs instead of multiplying
    the zeros (see ``VAEModule.loss``). Built once per fit (see ``sparse_inputs``), from
    rows that hold no missing values.
    """

    def __init__(
        self, row_starts: Tensor, columns: Tensor, values: Tensor | None, n_inputs: int
    ) -> None:
        self.n_inputs = n_inputs
        self.row_starts = row_starts  # (n_rows + 1,) int64
        self.columns = columns  # (n_non_zero,) int32
        self.values = values  # (n_non_zero,) float32, or None when all are 1

    @classmethod
    @torch.no_grad()
    def build(cls, module: VAEModule, X: Tensor, chunk: int = 4096) -> SparseInputs | None:
        """The CSR of ``likelihood.encoder_input(X)``, or None when it is not sparse."""
        likelihood = module.likelihood
        n_inputs = likelihood.n_inputs
        if module.missing or n_inputs < _MIN_SPARSE_INPUTS or X.shape[0] == 0:
            return None
        device = next(module.parameters()).device
        counts, columns, values = [], [], []
        for start in range(0, X.shape[0], chunk):
            inputs = likelihood.encoder_input(X[start : start + chunk].to(device)).cpu()
            rows, cols = inputs.nonzero(as_tuple=True)
            if start == 0 and len(cols) > _MAX_SPARSE_DENSITY * inputs.numel():
                return None  # dense already in the first rows: no full pass
            counts.append(torch.bincount(rows, minlength=inputs.shape[0]))
            columns.append(cols.to(torch.int32))
            values.append(inputs[rows, cols].float())
        columns, values = torch.cat(columns), torch.cat(values)
        if columns.numel() > _MAX_SPARSE_DENSITY * X.shape[0] * n_inputs:
            return None
        row_starts = torch.zeros(X.shape[0] + 1, dtype=torch.int64)
        torch.cumsum(torch.cat(counts), 0, out=row_starts[1:])
        binary = bool((values == 1).all())
        return cls(row_starts, columns, None if binary else values, n_inputs)

    def epoch(self, rows: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """The entries of ``rows`` in that order: (columns, values, starts).

        ``starts`` (len(rows) + 1) gives where each row's entries begin; ``batch`` cuts
        a run of rows out of them.
        """
        lengths = self.row_starts[1:][rows] - self.row_starts[:-1][rows]
        starts = torch.zeros(len(rows) + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=starts[1:])
        shift = torch.repeat_interleave(starts[:-1] - self.row_starts[:-1][rows], lengths)
        positions = torch.arange(int(starts[-1])) - shift
        values = None if self.values is None else self.values.index_select(0, positions)
        return self.columns.index_select(0, positions), values, starts

    def batch(
        self, epoch: tuple[Tensor, Tensor | None, Tensor], start: int, stop: int, device
    ) -> SparseRows:
        """The ``SparseRows`` of rows ``start:stop`` of an ``epoch``, on ``device``.

        The by-input order comes from a stable sort of the entries' inputs: numpy's radix
        sort on int16 takes about 40 us for a batch of 128 MNIST digits, 5x less than
        torch's sort. The rest is numpy too, whose calls cost less than torch's on arrays
        this small.
        """
        columns, values, starts = (t if t is None else t.numpy() for t in epoch)
        stop = min(stop, len(starts) - 1)
        first, last = starts[start], starts[stop]
        columns = columns[first:last]
        values = None if values is None else values[first:last]
        rows = np.repeat(
            np.arange(stop - start, dtype=np.int32), np.diff(starts[start : stop + 1])
        )
        narrow = np.int16 if self.n_inputs <= np.iinfo(np.int16).max else np.int32
        order = np.argsort(columns.astype(narrow), kind="stable")
        column_offsets = np.zeros(self.n_inputs, dtype=np.int32)
        np.cumsum(np.bincount(columns, minlength=self.n_inputs)[:-1], out=column_offsets[1:])
        parts = (
            columns,
            (starts[start:stop] - first).astype(np.int32),
            values,
            rows[order],
            column_offsets,
            None if values is None else values[order],
        )
        return SparseRows(*(None if a is None else torch.from_numpy(a).to(device) for a in parts))

    def rows(self, rows: Tensor, device) -> SparseRows:
        """The entries of ``rows`` by row only: enough for a forward pass without grad."""
        columns, values, starts = self.epoch(rows)
        parts = (columns, starts[:-1].to(torch.int32), values)
        return SparseRows(*(None if t is None else t.to(device) for t in parts), None, None, None)


@torch.no_grad()
def encode_all(
    module: VAEModule,
    X: Tensor,
    device: torch.device,
    rows: Tensor | None = None,
    batch_size: int = 1024,
    sparse: SparseInputs | None = None,
) -> tuple[Tensor, Tensor]:
    """Posterior means and log-variances of the rows (all, or ``rows``) of X.

    ``sparse``: the non-zero encoder inputs of X (see ``sparse_inputs``), for a first
    layer that skips the zeros. Batches of 1,024 rows: with 4,096, encoding 1M x 50 rows
    after a fit raised the process's peak memory by 60-520 MB from run to run (malloc
    keeping freed activations per thread; 0-100 MB with 1,024, at the same speed).
    """
    rows = torch.arange(len(X)) if rows is None else rows
    parts = []
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        entries = None if sparse is None else sparse.rows(chunk, device)
        parts.append(module.encode(X.index_select(0, chunk).to(device), entries))
    return tuple(torch.cat([p[k] for p in parts]).cpu().double() for k in (0, 1))


def sparse_inputs(module: VAEModule, X: Tensor, config: TrainingConfig) -> SparseInputs | None:
    """The ``SparseInputs`` of X for training with ``config``, or None for the dense path.

    Not for data with missing values (the mask channel is dense) nor under autocast,
    where the products are cheap already and ``embedding_bag`` stays in float32.
    """
    if config.has_missing or config.autocast_dtype is not None:
        return None
    return SparseInputs.build(module, X)


def _kl_weight(config: TrainingConfig, epoch: int) -> float:
    if config.kl_warmup_iter == 0:
        return config.beta
    return config.beta * min(1.0, (config.first_epoch + epoch + 1) / config.kl_warmup_iter)


def _progress(config: TrainingConfig):
    if not config.verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.max_iter, desc="VAE", unit="epoch", leave=True)


def train(
    module: VAEModule,
    optimizer: torch.optim.Optimizer,
    X_train: Tensor,
    X_val: Tensor | None,
    config: TrainingConfig,
    generator: torch.Generator,
    device: torch.device,
    history: History | None = None,
    train_rows: Tensor | None = None,
    sparse: SparseInputs | None = None,
) -> History:
    """Train ``module`` in place for up to ``config.max_iter`` epochs.

    With ``X_val``, stops when the validation ELBO has not improved by ``tol`` for
    ``n_iter_no_change`` epochs after the KL warm-up, and restores the best weights;
    without it, stops on the training loss, as MLPClassifier does. ``history`` carries the
    curves of earlier calls (warm start). A KeyboardInterrupt ends training with a warning,
    keeping the best weights so far. Raises NonFiniteLossError when the loss is not finite.
    ``train_rows`` selects the training rows of ``X_train`` without copying them.
    ``sparse``, from ``sparse_inputs``, holds the non-zero encoder inputs of ``X_train``.
    """
    history = history if history is not None else History()
    n_train = X_train.shape[0] if train_rows is None else len(train_rows)
    batch_size = min(config.batch_size, n_train)
    with _step_threads(module, batch_size, device) as threads:
        return _train_loop(
            module,
            optimizer,
            X_train,
            train_rows,
            X_val,
            config,
            generator,
            device,
            history,
            threads,
            sparse,
        )


def _train_loop(
    module,
    optimizer,
    X_train,
    train_rows,
    X_val,
    config,
    generator,
    device,
    history,
    threads,
    sparse,
):
    # Best-so-far tracking is per call; the curves carry on across warm starts.
    history.best_validation_score = history.best_loss = None
    history.converged = history.interrupted = False
    n_train = X_train.shape[0] if train_rows is None else len(train_rows)
    batch_size = min(config.batch_size, n_train)
    n_components = module.n_components
    stepper = FusedAdamWStep(optimizer)
    non_blocking = device.type == "cuda"
    if X_val is not None:
        # Common random numbers: every epoch is judged with the same noise.
        eps_val = torch.randn(X_val.shape[0], n_components, generator=generator).to(device)
        X_val = X_val.to(device)
    best_state = None
    no_improvement = 0
    steps_per_epoch = math.ceil(n_train / batch_size)
    average = None
    n_steps = 0
    if config.average_weights:
        # Epochs of a few steps average every step, so each epoch's end counts.
        every = _AVERAGE_EVERY if steps_per_epoch >= 10 else 1
        horizon = min(_AVERAGE_EPOCHS * steps_per_epoch, _AVERAGE_MAX_STEPS)
        average = WeightAverage(module, horizon / every)
    batch_sparse = None
    bar = _progress(config)
    module.train()
    try:
        for epoch in range(config.max_iter):
            kl_weight = _kl_weight(config, epoch)
            perm = torch.randperm(n_train, generator=generator)
            if train_rows is not None:
                perm = train_rows[perm]
            eps_all = torch.randn(n_train, n_components, generator=generator)
            epoch_sparse = None if sparse is None else sparse.epoch(perm)
            total = torch.zeros((), device=device)
            for start in range(0, n_train, batch_size):
                idx = perm[start : start + batch_size]
                x = X_train.index_select(0, idx).to(device, non_blocking=non_blocking)
                eps = eps_all[start : start + batch_size].to(device, non_blocking=non_blocking)
                if epoch_sparse is not None:
                    batch_sparse = sparse.batch(epoch_sparse, start, start + batch_size, device)
                if threads is not None:
                    threads.before_step()
                total += train_step(
                    module,
                    stepper,
                    x,
                    eps,
                    kl_weight,
                    config.autocast_dtype,
                    complete=not config.has_missing,
                    sparse=batch_sparse,
                )
                if threads is not None:
                    threads.after_step()
                n_steps += 1
                if average is not None and n_steps % every == 0:
                    average.update()
            loss = total.item() / n_train
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"The training loss became {loss} at epoch {epoch + 1}. Try a lower "
                    "learning_rate_init, or rescale the data."
                )
            history.n_iter += 1
            history.loss_curve.append(loss - config.log_det)
            in_warmup = config.first_epoch + epoch + 1 < config.kl_warmup_iter
            if X_val is not None:
                best = history.best_validation_score
                with average.applied() if average is not None else contextlib.nullcontext():
                    score = validation_score(module, X_val, eps_val, 4 * batch_size)
                    score += config.log_det
                    if not in_warmup and (best is None or score > best):
                        best_state = {k: v.clone() for k, v in module.state_dict().items()}
                        history.best_validation_score = score
                history.validation_scores.append(score)
                if not in_warmup:
                    improved = best is None or score >= best + config.tol
                    no_improvement = 0 if improved else no_improvement + 1
            elif not in_warmup:
                if history.best_loss is None or loss < history.best_loss - config.tol:
                    no_improvement = 0
                else:
                    no_improvement += 1
                if history.best_loss is None or loss < history.best_loss:
                    history.best_loss = loss
            if bar is not None:
                postfix = {"loss": f"{history.loss_curve[-1]:.4g}"}
                if history.validation_scores:
                    postfix["val_elbo"] = f"{history.validation_scores[-1]:.4g}"
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
            if no_improvement > config.n_iter_no_change:
                history.converged = True
                break
    except KeyboardInterrupt:
        history.interrupted = True
        warnings.warn(
            "Training interrupted by the user; keeping the best weights so far.",
            stacklevel=3,
        )
    finally:
        if bar is not None:
            bar.close()
        module.eval()
    if best_state is not None:
        module.load_state_dict(best_state)
    elif average is not None:
        with torch.no_grad():
            torch._foreach_copy_(average.params, average.average)
    return history
