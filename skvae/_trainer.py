"""The trainer: epochs of minibatch steps, KL warm-up, early stopping, weight average, history.

The data is a dict of tensors (``"x"`` and any covariates), one row per sample; an epoch is
a random permutation of row indices cut into batches, with no per-sample Dataset or
DataLoader, its rows gathered a chunk of batches at a time. ``Trainer.run`` is the loop;
each piece of it (``run_epoch``, ``train_step``, ``row_weights``, ``validation_step``,
``kl_weight``, ``on_epoch_end``) is a small method a subclass can replace, as skorch's
``fit_loop`` and scvi-tools' training plan are built. A step goes through the analytic
step (``_analytic_step``) where it covers the model, else through autograd (``step``).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from ._analytic_step import AnalyticStep, Pass
from ._module import VAEModule
from ._optim import AdamW, WeightAverage
from ._posteriors import Posterior
from ._sparse_layer import SparseInputs
from ._threads import step_threads

__all__ = ["Budget", "History", "NonFiniteLossError", "Trainer", "TrainingConfig", "auto_budget"]

#: Horizon of the weight average, in epochs (capped at ``AVERAGE_MAX_STEPS`` steps).
AVERAGE_EPOCHS = 30
AVERAGE_MAX_STEPS = 1000
#: In epochs of 10 steps or more, the average takes every this-many-th step's weights.
AVERAGE_EVERY = 2
#: Rows per batch when the trainer encodes its data for the latent diagnostics.
ENCODE_BATCH_SIZE = 1024
#: An epoch's rows are gathered in chunks of whole batches of about this many values.
GATHER_ELEMENTS = 2**20
#: The encoder's inputs of every training row are computed once, not in every step, when
#: they are at most this many values (one-hot codes, logs of counts).
ENCODER_INPUT_ELEMENTS = 2**24

# The "auto" training budget. Its unit is the optimizer step, not the epoch: a 100-row table
# is one minibatch per epoch, a million rows thousands. benchmarks/bench_defaults.py
# (tuning group) measures the rules; docs/user_guide says what they mean for a user.
#: Batch size: a tenth of the training rows, within these bounds.
AUTO_BATCH_SIZE = (32, 128)
#: Steps without validation improvement before early stopping (at least 10 epochs).
AUTO_PATIENCE_STEPS = 500
AUTO_MIN_PATIENCE_EPOCHS = 10
#: learning_rate="adaptive": each plateau divides the step size by this, up to LR_DECAYS
#: times, before one more plateau stops training.
LR_DECAY = 10.0
LR_DECAYS = 2
#: Step budget of a fit (at least 2 epochs): thousands of steps for a small table, a few
#: epochs for a million rows.
AUTO_MAX_STEPS = 20000
AUTO_MIN_EPOCHS = 2


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite."""


class Budget(NamedTuple):
    """The batch size, epoch limit and early-stopping patience (in epochs) of a fit."""

    batch_size: int
    max_iter: int
    n_iter_no_change: int


def auto_budget(n_train: int, batch_size, max_iter, n_iter_no_change) -> Budget:
    """The budget of a fit on ``n_train`` rows: each ``"auto"`` resolved, the rest as given.

    ``"auto"`` batch sizes are ``n_train // 10`` within ``AUTO_BATCH_SIZE``; an ``"auto"``
    patience is ``AUTO_PATIENCE_STEPS`` steps and an ``"auto"`` epoch limit
    ``AUTO_MAX_STEPS`` steps, each rounded up to whole epochs.
    """
    if batch_size == "auto":
        low, high = AUTO_BATCH_SIZE
        batch_size = min(max(n_train // 10, low), high)
    steps_per_epoch = math.ceil(n_train / min(batch_size, n_train))
    if max_iter == "auto":
        max_iter = max(math.ceil(AUTO_MAX_STEPS / steps_per_epoch), AUTO_MIN_EPOCHS)
    if n_iter_no_change == "auto":
        n_iter_no_change = max(
            math.ceil(AUTO_PATIENCE_STEPS / steps_per_epoch), AUTO_MIN_PATIENCE_EPOCHS
        )
    return Budget(int(batch_size), int(max_iter), int(n_iter_no_change))


@dataclass
class TrainingConfig:
    batch_size: int = 128
    max_iter: int = 200
    beta: float = 1.0
    kl_warmup_iter: int = 0
    n_iter_no_change: int = 10
    tol: float = 1e-4
    verbose: int = 0
    # Autocast dtype of the training step (None: plain float32).
    autocast_dtype: torch.dtype | None = None
    # Added to per-row ELBOs so that curves are in nats in the user's units.
    log_det: float = 0.0
    # Epochs already run, where the KL warm-up resumes (partial_fit: one epoch per call).
    first_epoch: int = 0
    # Polyak averaging needs many steps in one run; partial_fit keeps Adam's last iterate.
    average_weights: bool = True
    # False when the data is known to have no missing values: steps skip the search for NaN.
    missing: bool = True
    # Samples of z per row in the objective: 1 is the ELBO, K > 1 the IWAE bound (DReG).
    n_train_samples: int = 1
    # Times a plateau divides the learning rate by LR_DECAY before it stops training.
    lr_decays: int = 0


@dataclass
class History:
    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_validation_score: float | None = None
    best_loss: float | None = None
    n_iter: int = 0
    converged: bool = False
    interrupted: bool = False


def _rows(data: Mapping[str, Tensor], rows: Tensor, device: torch.device) -> dict:
    non_blocking = device.type == "cuda"
    return {
        k: v.index_select(0, rows).to(device, non_blocking=non_blocking) for k, v in data.items()
    }


class Trainer:
    """Trains a ``VAEModule`` in place on ``data`` (a dict of row-aligned tensors).

    Parameters
    ----------
    module, optimizer : the model and its optimizer (state kept across runs).
    config : TrainingConfig
    generator : torch.Generator
        The source of minibatch orders and training noise.
    device : torch.device
    data : dict of str to Tensor
        ``"x"`` (rescaled, float32) and any covariates; batches are cut from these rows.
        ``"x"`` may also be a ``SparseData``, which densifies the rows of each batch.
    train_rows : Tensor, optional
        The rows of ``data`` to train on (all by default), selected without copies.
    validation : dict of str to Tensor, optional
        Held-out rows: with them, training stops when their ELBO has not improved by
        ``tol`` for ``n_iter_no_change`` epochs after the KL warm-up, and the best weights
        are restored; without them it stops on the training loss, as MLPClassifier does.
    history : History, optional
        The curves of earlier runs (warm start), continued.
    """

    def __init__(
        self,
        module: VAEModule,
        optimizer: AdamW,
        config: TrainingConfig,
        generator: torch.Generator,
        device: torch.device,
        data: Mapping[str, Tensor],
        train_rows: Tensor | None = None,
        validation: Mapping[str, Tensor] | None = None,
        history: History | None = None,
    ) -> None:
        self.module = module
        self.optimizer = optimizer
        self.config = config
        self.generator = generator
        self.device = device
        self.data = data
        self.train_rows = train_rows
        self.validation = validation
        self.history = history if history is not None else History()
        self.n_train = len(data["x"]) if train_rows is None else len(train_rows)
        self.batch_size = min(config.batch_size, self.n_train)
        self.sparse = self._sparse_inputs()
        self.analytic = AnalyticStep.build(module, config.n_train_samples, config.autocast_dtype)
        self.data = self._with_encoder_inputs(data)

    def _with_encoder_inputs(self, data: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
        """``data`` with every row's encoder input (``"h"``), which the analytic step then
        gathers instead of computing: where the likelihood transforms x (one-hot codes,
        logs) and nothing else joins it (no mask, covariates or sparse first layer)."""
        module, x = self.module, data["x"]
        if (
            self.analytic is None
            or self.sparse is not None
            or self.config.missing
            or module.missing
            or module.covariates
            or not isinstance(x, Tensor)
            or len(x) * module.likelihood.n_inputs > ENCODER_INPUT_ELEMENTS
        ):
            return data
        with torch.no_grad():
            h = module.likelihood.encoder_input(x)
        return data if h is x else {**data, "h": h}

    def _sparse_inputs(self) -> SparseInputs | None:
        """The non-zero encoder inputs of the data, when the first layer should skip zeros.

        Covariates' (dense, few) inputs are multiplied beside it. Not for data with missing
        values (the mask channel), nor under autocast, where the products are cheap already
        and ``embedding_bag`` stays float32.
        """
        module, config = self.module, self.config
        if config.missing or not module.sparse_inputs_possible or config.autocast_dtype:
            return None
        likelihood = module.likelihood
        if hasattr(self.data["x"], "encoder_inputs"):  # a sparse X (``_sparse_data``)
            sparse = self.data["x"].encoder_inputs(likelihood)
        else:
            sparse = SparseInputs.build(
                lambda x: likelihood.encoder_input(x.to(self.device)),
                self.data["x"],
                likelihood.n_inputs,
            )
        if sparse is not None:
            sparse.width = module.encoder[0].in_features
        return sparse

    # ------------------------------------------------------------------ the loop

    def run(self, n_epochs: int) -> History:
        """Train for up to ``n_epochs`` epochs; returns the history.

        A KeyboardInterrupt ends training with a warning, keeping the best weights so far.
        Raises NonFiniteLossError when the loss is not finite.
        """
        history = self.history
        self.begin_run()
        n_weights = sum(p.numel() for p in self.module.parameters())
        bar = self._progress()
        self.module.train()
        try:
            with step_threads(n_weights, self.batch_size, self.device):
                for epoch in range(n_epochs):
                    loss = self.run_epoch(epoch)
                    stop = self.on_epoch_end(epoch, loss)
                    if bar is not None:
                        self._show(bar)
                    if stop:
                        break
        except KeyboardInterrupt:
            history.interrupted = True
            warnings.warn(
                "Training interrupted by the user; keeping the best weights so far.",
                stacklevel=4,
            )
        finally:
            if bar is not None:
                bar.close()
            self.module.eval()
        self._keep_best_weights()
        return history

    def begin_run(self) -> None:
        """Reset what a run tracks, and draw the validation noise (before any epoch's)."""
        history = self.history
        # Best-so-far tracking is per run; the curves carry on across warm starts.
        history.best_validation_score = history.best_loss = None
        history.converged = history.interrupted = False
        self._best_state, self._no_improvement, self.average = None, 0, self._weight_average()
        self._decays_left = self.config.lr_decays
        if self.validation is not None:
            # Common random numbers: every epoch is judged with the same noise.
            k, d = self.config.n_train_samples, self.module.n_latent
            shape = (len(self.validation["x"]), d) if k == 1 else (k, d)
            self._eps_val = torch.randn(shape, generator=self.generator).to(self.device)
            self._validation = {k: v.to(self.device) for k, v in self.validation.items()}

    def draw_epoch(self) -> tuple[Tensor, Tensor]:
        """An epoch's order of training rows and its training noise, from the generator."""
        order = torch.randperm(self.n_train, generator=self.generator)
        if self.train_rows is not None:
            order = self.train_rows[order]
        k, d = self.config.n_train_samples, self.module.n_latent
        shape = (self.n_train, d) if k == 1 else (self.n_train, k, d)
        return order, torch.randn(shape, generator=self.generator)

    def run_epoch(self, epoch: int) -> float:
        """One pass over the training rows in shuffled minibatches; the mean loss per row."""
        kl_weight = self.kl_weight(epoch)
        order, eps_all = self.draw_epoch()
        entries = None if self.sparse is None else self.sparse.epoch(order)
        eps_all = eps_all.to(self.device, non_blocking=self.device.type == "cuda")
        # The analytic step needs no autograd: one no_grad for the epoch, not one a step.
        grad_mode = torch.no_grad() if self.analytic is not None else contextlib.nullcontext()
        with grad_mode:
            total = self._run_batches(order, entries, eps_all, kl_weight)
        loss = total.item() / self.n_train
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"The training loss became {loss} at epoch {epoch + 1}. Try a lower "
                "learning_rate_init, or rescale the data."
            )
        return loss

    def _run_batches(self, order, entries, eps_all, kl_weight) -> Tensor:
        total = torch.zeros((), device=self.device)
        for start, batch in self._batches(order):
            stop = start + self.batch_size
            if not self.config.missing:
                batch["mask"] = None
            if entries is not None:
                batch["sparse"] = self.sparse.batch(entries, start, stop, self.device)
            total += self.train_step(batch, eps_all[start:stop], kl_weight)
            if self.average is not None:
                self.average.step()
        return total

    def _batches(self, order: Tensor) -> Iterator[tuple[int, dict]]:
        """(first row, batch) of an epoch's order: rows gathered a chunk of batches at a time.

        One gather per chunk instead of per step; the batches are views of the chunk.
        """
        size = self.batch_size
        width = max(1, sum(v.shape[1] if len(v.shape) > 1 else 1 for v in self.data.values()))
        chunk = max(1, GATHER_ELEMENTS // (width * size)) * size
        if not isinstance(self.data["x"], Tensor):
            chunk = size  # a sparse X is densified a batch at a time: nothing to share
        for first in range(0, self.n_train, chunk):
            rows = _rows(self.data, order[first : first + chunk], self.device)
            for start in range(0, len(rows["x"]), size):
                yield first + start, {k: v[start : start + size] for k, v in rows.items()}

    def train_step(self, batch: dict, eps: Tensor, kl_weight: float) -> Tensor:
        """One optimizer step on a batch; the batch's summed loss, without a device sync."""
        if self.analytic is not None:
            self.optimizer.zero_grad()
            forward = self.analytic.forward(batch, eps)
            weights = self.row_weights(forward, kl_weight)
            loss = self.analytic.backward(forward, kl_weight, weights)
            self.optimizer.step()
            return loss * len(eps)
        return self.step(lambda: self.module.loss(batch, eps, kl_weight).loss, len(eps))

    def row_weights(self, forward: Pass, kl_weight: float) -> Tensor | None:
        """Each row's weight in the analytic step's loss; None: the mean over the rows."""
        return None

    def step(self, objective: Callable[[], Tensor], n_rows: int) -> Tensor:
        """One optimizer step on ``objective()`` (a mean over rows); its value times ``n_rows``."""
        dtype = self.config.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext():
            loss = objective()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach() * n_rows

    def validation_scores(self) -> Iterator[Tensor]:
        """Per-row bounds of the validation rows with fixed noise, one tensor per chunk.

        The single-sample ELBO, or with ``n_train_samples`` K > 1 the importance-weighted
        bound with the same K samples for every row.
        """
        data, eps = self._validation, self._eps_val
        step = 4 * self.batch_size
        for start in range(0, len(data["x"]), step):
            batch = {k: v[start : start + step] for k, v in data.items()}
            if not self.config.missing:
                batch["mask"] = None
            if self.config.n_train_samples > 1:
                yield self.module.iw_bound(batch, eps)
            elif self.analytic is not None:
                forward = self.analytic.forward(batch, eps[start : start + step])
                log_p = self.module.likelihood.log_prob(forward.x, forward.out, forward.mask)
                yield log_p - forward.kl
            else:
                yield self.module.elbo(batch, eps[start : start + step])

    @torch.no_grad()
    def validation_step(self) -> float:
        """Mean bound of the validation rows with fixed noise, in nats: the training one."""
        total = 0.0
        for scores in self.validation_scores():
            total += scores.sum().item()
        return total / len(self._validation["x"]) + self.config.log_det

    def kl_weight(self, epoch: int) -> float:
        """Weight of the KL term in epoch ``epoch`` of this run (the warm-up ramp)."""
        config = self.config
        if config.kl_warmup_iter == 0:
            return config.beta
        return config.beta * min(1.0, (config.first_epoch + epoch + 1) / config.kl_warmup_iter)

    def on_epoch_end(self, epoch: int, loss: float, score: float | None = None) -> bool:
        """Record the epoch and judge it; True when training should stop.

        ``score``: the validation bound of the epoch's weights when the caller computed it
        (models trained together), else the trainer computes it.
        """
        config, history = self.config, self.history
        history.n_iter += 1
        history.loss_curve.append(loss - config.log_det)
        in_warmup = config.first_epoch + epoch + 1 < config.kl_warmup_iter
        if self.validation is not None:
            improved = self._judge_validation(in_warmup, score)
        elif in_warmup:
            improved = True
        else:
            best = history.best_loss
            improved = best is None or loss < best - config.tol
            history.best_loss = loss if best is None else min(best, loss)
        if not in_warmup:
            self._no_improvement = 0 if improved else self._no_improvement + 1
        plateau = self._no_improvement > config.n_iter_no_change
        if plateau and self._decays_left:
            self.decay_learning_rate()
            plateau = False
        history.converged = plateau
        return history.converged

    def decay_learning_rate(self) -> None:
        """Divide every step size by ``LR_DECAY`` and give the new rate a full patience."""
        for group in self.optimizer.param_groups:
            group["lr"] = group["lr"] / LR_DECAY
        self._decays_left -= 1
        self._no_improvement = 0

    def _judge_validation(self, in_warmup: bool, score: float | None = None) -> bool:
        history = self.history
        best = history.best_validation_score
        averaged = self.average.applied() if self.average else contextlib.nullcontext()
        with averaged:
            score = self.validation_step() if score is None else score
            if not in_warmup and (best is None or score > best):
                # Every weight lives in the optimizer's flat buffers: copies of those.
                self._best_state = [buffer.clone() for buffer in self.optimizer.buffers]
                history.best_validation_score = score
        history.validation_scores.append(score)
        return best is None or score >= best + self.config.tol

    # ------------------------------------------------------------------ helpers

    def _weight_average(self) -> WeightAverage | None:
        if not self.config.average_weights:
            return None
        steps_per_epoch = math.ceil(self.n_train / self.batch_size)
        # Epochs of a few steps average every step, so each epoch's end counts.
        every = AVERAGE_EVERY if steps_per_epoch >= 10 else 1
        horizon = min(AVERAGE_EPOCHS * steps_per_epoch, AVERAGE_MAX_STEPS)
        return WeightAverage(self.optimizer.buffers, horizon, every)

    def _keep_best_weights(self) -> None:
        if self._best_state is not None:
            for buffer, best in zip(self.optimizer.buffers, self._best_state, strict=True):
                buffer.copy_(best)
        elif self.average is not None:
            self.average.copy_to_module()

    def _progress(self):
        if not self.config.verbose:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.max_iter, desc="VAE", unit="epoch", leave=True)

    def _show(self, bar) -> None:
        history = self.history
        postfix = {"loss": f"{history.loss_curve[-1]:.4g}"}
        if history.validation_scores:
            postfix["val_elbo"] = f"{history.validation_scores[-1]:.4g}"
        bar.set_postfix(postfix, refresh=False)
        bar.update(1)

    @torch.no_grad()
    def encode(self, rows: Tensor | None = None) -> Posterior:
        """q(z | x) of ``rows`` of the data (all by default), in float64 on the CPU.

        Encodes in batches of ``ENCODE_BATCH_SIZE`` rows, through the sparse first layer
        when training used it, to bound the memory whatever the number of rows.
        """
        rows = torch.arange(len(self.data["x"])) if rows is None else rows
        parts = []
        for start in range(0, len(rows), ENCODE_BATCH_SIZE):
            chunk = rows[start : start + ENCODE_BATCH_SIZE]
            batch = _rows(self.data, chunk, self.device)
            if self.sparse is not None:
                batch["sparse"] = self.sparse.rows(chunk, self.device)
            parts.append(self.module.encode(batch).params)
        return self.module.posterior(torch.cat(parts).cpu().double())
