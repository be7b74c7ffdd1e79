"""Several VAEs of one architecture trained as one computation: ``fit_together``.

Each estimator starts its fit as it would alone (``BaseVAE._start_fit``: its data, model,
seeds, validation rows and trainer); then the trainers run together. The members' weights
and Adam moments become rows of stacked buffers (``AdamW.stack``), so that a training step
is one batched forward and backward over every member's own minibatch (``torch.bmm``) and
one fused update of the stack. Each member keeps its own order of rows and noise, drawn
from its own generator as alone, its validation rows (judged for every member in one
batched pass), weight average, early stopping and history; a member that stops keeps the
weights and optimizer state it had then. Each estimator then ends its fit as alone
(``BaseVAE._end_fit``). A member's model is the one it would get alone, up to the
rounding of batched products. ``benchmarks/bench_cost.py`` measures what it saves
(VAEImputer fits its candidates this way).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from ._analytic_step import AnalyticStep, layer, layers
from ._optim import AdamW, WeightAverage, _offsets
from ._threads import step_threads
from ._trainer import NonFiniteLossError, Trainer

__all__ = ["EnsembleTrainer", "fit_together", "trains_together"]


def fit_together(estimators: Sequence, X) -> list:
    """Fit each of ``estimators`` on X, training them together where they can be.

    Returns the fitted estimators. Those that cannot share a computation (another
    architecture, an objective without the analytic step) are fitted one after another.
    """
    for estimator in estimators:
        estimator._validate_params()
    fits = [estimator._start_fit(X, incremental=False) for estimator in estimators]
    trainers = [fit.trainer for fit in fits]
    try:
        if len(trainers) > 1 and trains_together(trainers):
            EnsembleTrainer(trainers).run(trainers[0].config.max_iter)
        else:
            for trainer in trainers:
                trainer.run(trainer.config.max_iter)
    except NonFiniteLossError as exc:
        raise ValueError(str(exc)) from None
    return [est._end_fit(fit) for est, fit in zip(estimators, fits, strict=True)]


def trains_together(trainers: Sequence[Trainer]) -> bool:
    """Whether these trainers' models can be stacked: one architecture, one schedule."""
    first = trainers[0]

    def same(trainer: Trainer) -> bool:
        settings = [
            {k: v for k, v in g.items() if k != "params"} for g in trainer.optimizer.param_groups
        ]
        first_settings = [
            {k: v for k, v in g.items() if k != "params"} for g in first.optimizer.param_groups
        ]
        return (
            type(trainer) is Trainer
            and trainer.analytic is not None
            and trainer.sparse is None
            and not trainer.module.covariates
            and isinstance(trainer.data["x"], Tensor)
            and trainer.config.lr_decays == 0
            and dataclasses.astuple(trainer.config) == dataclasses.astuple(first.config)
            and trainer.n_train == first.n_train
            and (trainer.validation is None) == (first.validation is None)
            and _n_validation(trainer) == _n_validation(first)
            and trainer.module.spec == first.module.spec
            and trainer.device == first.device
            and trainer.optimizer.n_steps == first.optimizer.n_steps
            and settings == first_settings
        )

    return all(same(trainer) for trainer in trainers)


def _n_validation(trainer: Trainer) -> int | None:
    return None if trainer.validation is None else len(trainer.validation["x"])


class EnsembleTrainer:
    """Runs several ``Trainer``s of one architecture as one computation (see the module)."""

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        self.trainers = list(trainers)
        first = self.trainers[0]
        self.config, self.device = first.config, first.device
        self.n_train, self.batch_size = first.n_train, first.batch_size
        self.optimizer = AdamW.stack([t.optimizer for t in self.trainers])
        for trainer in self.trainers:  # their parameters are rows of the stack now
            trainer.analytic = AnalyticStep.build(trainer.module, 1, None)
        self.step = self._stacked_step(first)
        self._draws: list[tuple[Tensor, Tensor]] = []

    def _stacked_step(self, first: Trainer) -> AnalyticStep:
        """The analytic step of the first member's model, on the stacked weights."""
        n_members = len(self.trainers)
        views = {}
        for group, stacked in zip(first.optimizer._groups, self.optimizer._groups, strict=True):
            for p, start in zip(group.params, _offsets(group.params), strict=False):
                rows = slice(start, start + p.numel())
                views[id(p)] = tuple(
                    b[:, rows].view(n_members, *p.shape) for b in (stacked.data, stacked.grad)
                )

        def stacked(network):
            return [
                layer(*views[id(a.weight)], *views[id(a.bias)], a.input_major)
                for a in layers(network)
            ]

        template = copy.deepcopy(first.module)
        originals = dict(first.module.likelihood.named_parameters())
        for name, param in template.likelihood.named_parameters():
            data, grad = views[id(originals[name])]
            # (members, 1, ...): each member's parameter broadcasts over its own rows.
            param.data = data.unsqueeze(1)
            param.grad = grad.unsqueeze(1)
        return AnalyticStep(template, stacked(first.module.encoder), stacked(first.module.decoder))

    def run(self, n_epochs: int) -> None:
        """Train every member for up to ``n_epochs`` epochs, each stopping on its own."""
        trainers = self.trainers
        for trainer in trainers:
            trainer.begin_run()
            trainer.module.train()
        self.average = None
        if trainers[0].average is not None:
            member = trainers[0].average
            self.average = WeightAverage(self.optimizer.buffers, 1.0, member.every)
            self.average.decay = member.decay
            for row, trainer in enumerate(trainers):
                trainer.average = self.average.row(row)
        active, stopped = list(range(len(trainers))), {}
        n_weights = len(trainers) * sum(p.numel() for p in trainers[0].module.parameters())
        bar = self._progress()
        try:
            with step_threads(n_weights, self.batch_size, self.device):
                for epoch in range(n_epochs):
                    losses = self.run_epoch(epoch, active)
                    scores = self.validation_scores()
                    for row in list(active):
                        score = None if scores is None else scores[row]
                        if trainers[row].on_epoch_end(epoch, losses[row], score):
                            active.remove(row)
                            stopped[row] = self._stop(row)
                    if bar is not None:
                        bar.set_postfix({"training": len(active)}, refresh=False)
                        bar.update(1)
                    if not active:
                        break
        except KeyboardInterrupt:
            for trainer in trainers:
                trainer.history.interrupted = True
            warnings.warn(
                "Training interrupted by the user; keeping the best weights so far.",
                stacklevel=3,
            )
        finally:
            if bar is not None:
                bar.close()
        for row, trainer in enumerate(trainers):
            if row in stopped:
                self._restore(row, stopped[row])
            else:
                trainer._keep_best_weights()
                trainer.optimizer.n_steps = self.optimizer.n_steps
            trainer.module.eval()
            trainer.optimizer.unstack()

    def run_epoch(self, epoch: int, active: list[int]) -> list[float]:
        """One epoch of every member, in batched steps; each member's mean loss per row.

        Members that have stopped are computed along (on their last order and noise) and
        draw nothing from their generators.
        """
        trainers = self.trainers
        kl_weight = trainers[0].kl_weight(epoch)
        self._draws = [
            trainer.draw_epoch() if row in active or not self._draws else self._draws[row]
            for row, trainer in enumerate(trainers)
        ]
        eps = torch.stack([noise for _, noise in self._draws]).to(self.device)
        total = torch.zeros(len(trainers), device=self.device)
        with torch.no_grad():
            for start in range(0, self.n_train, self.batch_size):
                stop = start + self.batch_size
                x = [t.data["x"].index_select(0, order[start:stop]) for t, (order, _) in zip(
                    trainers, self._draws, strict=True)]  # fmt: skip
                batch = {"x": torch.stack(x).to(self.device)}
                if not self.config.missing:
                    batch["mask"] = None
                self.optimizer.zero_grad()
                loss = self.step.backward(self.step.forward(batch, eps[:, start:stop]), kl_weight)
                self.optimizer.step()
                if self.average is not None:
                    self.average.step()
                total += loss * batch["x"].shape[1]
        losses = (total / self.n_train).tolist()
        for row in active:
            if not math.isfinite(losses[row]):
                raise NonFiniteLossError(
                    f"The training loss became {losses[row]} at epoch {epoch + 1}. Try a "
                    "lower learning_rate_init, or rescale the data."
                )
        return losses

    @torch.no_grad()
    def validation_scores(self) -> list[float] | None:
        """Every member's validation bound with its averaged weights, in one batched pass
        as ``Trainer.validation_step`` computes it alone; None where members judge their
        epochs themselves (another validation, rows of other sizes, K > 1 samples)."""
        trainers = self.trainers
        first = trainers[0]
        if (
            first.validation is None
            or first.config.n_train_samples > 1
            or any(type(t).validation_step is not Trainer.validation_step for t in trainers)
            or any(set(t._validation) != {"x"} for t in trainers)
            or len({t._validation["x"].shape for t in trainers}) > 1
        ):
            return None
        x = torch.stack([t._validation["x"] for t in trainers])
        eps = torch.stack([t._eps_val for t in trainers])
        totals = torch.zeros(len(trainers), dtype=torch.float64, device=self.device)
        step = 4 * first.batch_size
        with self.average.applied() if self.average else contextlib.nullcontext():
            for start in range(0, x.shape[1], step):
                batch = {"x": x[:, start : start + step]}
                if not self.config.missing:
                    batch["mask"] = None
                forward = self.step.forward(batch, eps[:, start : start + step])
                log_p = self.step.module.likelihood.log_prob(forward.x, forward.out, forward.mask)
                totals += (log_p - forward.kl).sum(-1).double()
        means = (totals / x.shape[1]).tolist()
        return [mean + t.config.log_det for mean, t in zip(means, trainers, strict=True)]

    def _stop(self, row: int) -> tuple:
        """What a member that stops keeps: its best (or averaged) weights and Adam state."""
        self.trainers[row]._keep_best_weights()
        kept = [
            [getattr(group, key)[row].clone() for key in ("data", "exp_avg", "exp_avg_sq")]
            for group in self.optimizer._groups
        ]
        return kept, self.optimizer.n_steps

    def _restore(self, row: int, stopped: tuple) -> None:
        kept, n_steps = stopped
        for group, buffers in zip(self.optimizer._groups, kept, strict=True):
            for key, value in zip(("data", "exp_avg", "exp_avg_sq"), buffers, strict=True):
                getattr(group, key)[row].copy_(value)
        self.trainers[row].optimizer.n_steps = n_steps

    def _progress(self):
        if not self.config.verbose:
            return None
        from tqdm.auto import tqdm

        desc = f"{len(self.trainers)} VAEs"
        return tqdm(total=self.config.max_iter, desc=desc, unit="epoch", leave=True)
