"""Training behaviour: KL warm-up, the trainer's steps, progress output, collapse diagnostics."""

import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import skvae._optim as optim
from skvae import VAEEstimator, VAEModule
from skvae._optim import make_optimizer
from skvae._trainer import Trainer, TrainingConfig


def _trainer(config, cls=Trainer):
    """A Trainer (or subclass) of a small model on 10 rows, to call its steps one by one."""
    module = VAEModule.from_spec(
        {
            "n_features": 3,
            "n_components": 1,
            "hidden_layer_sizes": (),
            "activation": "relu",
            "likelihood": {"name": "gaussian", "covariance_type": "diag"},
        }
    )
    optimizer = make_optimizer(module, (module.encoder, module.decoder), lr=1e-3)
    data = {"x": torch.zeros(10, 3)}
    generator = torch.Generator().manual_seed(0)
    return cls(module, optimizer, config, generator, torch.device("cpu"), data)


def test_kl_weight_ramps_linearly_to_beta():
    trainer = _trainer(TrainingConfig(beta=2.0, kl_warmup_iter=4))
    assert [trainer.kl_weight(e) for e in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert _trainer(TrainingConfig(beta=0.5)).kl_weight(0) == 0.5
    # partial_fit's runs of one epoch resume the ramp where the earlier ones left it.
    resumed = _trainer(TrainingConfig(beta=2.0, kl_warmup_iter=4, first_epoch=2))
    assert [resumed.kl_weight(e) for e in range(3)] == [1.5, 2.0, 2.0]


def test_a_subclass_replaces_one_step_of_the_loop():
    class NoKL(Trainer):
        def kl_weight(self, epoch):
            return 0.0

    seen = []
    real_step = Trainer.train_step

    def recording(self, batch, eps, kl_weight):
        seen.append((len(eps), kl_weight))
        return real_step(self, batch, eps, kl_weight)

    config = TrainingConfig(batch_size=4, beta=2.0)
    trainer = _trainer(config, NoKL)
    with mock.patch.object(Trainer, "train_step", recording):
        history = trainer.run(2)
    # 10 rows in batches of 4 (the last one short), each epoch with the subclass's weight.
    assert seen == [(4, 0.0), (4, 0.0), (2, 0.0)] * 2
    assert history.n_iter == 2 and len(history.loss_curve) == 2


def test_early_stopping_waits_for_the_end_of_the_warm_up():
    X = load_digits().data[:300]
    # tol so large that no epoch counts as progress: without the warm-up rule this stops
    # after n_iter_no_change + 2 = 3 epochs.
    vae = VAEEstimator(kl_warmup_iter=20, tol=1e9, n_iter_no_change=1, random_state=0)
    vae.fit(X)
    assert vae.n_iter_ == 20 + 2
    # The best weights are chosen after the ramp, when the objective is the true ELBO.
    assert vae.best_validation_score_ == max(vae.validation_scores_[19:])


def test_verbose_shows_progress_and_quiet_prints_nothing(capsys):
    X = load_digits().data[:200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        VAEEstimator(max_iter=3, random_state=0).fit(X)
        quiet = capsys.readouterr()
        VAEEstimator(max_iter=3, verbose=1, random_state=0).fit(X)
        loud = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    assert "3/3" in loud.err and "loss" in loud.err and "val_elbo" in loud.err


def test_unused_latent_dimensions_show_as_collapsed():
    # Probabilistic PCA data with 2 true latent dimensions, fitted with 4: the ELBO
    # switches the 2 spare ones off (KL ~ 0, posterior mean constant).
    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 8)) * 2
    X = rng.normal(size=(3000, 2)) @ W + 0.3 * rng.normal(size=(3000, 8))
    vae = VAEEstimator(
        n_components=4,
        hidden_layer_sizes=(),
        covariance_type="spherical",
        learning_rate_init=3e-3,
        max_iter=1000,
        random_state=0,
    ).fit(X)
    assert vae.n_active_components_ == 2
    kl = np.sort(vae.kl_per_component_)
    assert kl[1] < 0.05 and kl[2] > 1.0
    # Active dimensions are those whose posterior mean varies across rows.
    active = vae.transform(X).var(axis=0) > 0.01
    assert active.sum() == 2
    np.testing.assert_array_equal(active, vae.kl_per_component_ > 0.5)


def test_a_large_beta_collapses_the_posterior():
    X = load_digits().data[:400]
    total_kl = {}
    for beta in (1.0, 4.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae = VAEEstimator(beta=beta, max_iter=30, random_state=0).fit(X)
        total_kl[beta] = vae.kl_per_component_.sum()
    # beta weighs the KL term: at 4 the latent space carries a fraction of its information.
    assert total_kl[1.0] > 1.0 and total_kl[4.0] < total_kl[1.0] / 4


def test_bfloat16_compute_dtype_trains_to_a_comparable_model():
    X = load_digits().data / 16.0
    scores = {}
    for dtype in ("float32", "bfloat16"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae = VAEEstimator(
                likelihood="bernoulli", max_iter=20, compute_dtype=dtype, random_state=0
            ).fit(X[:1500])
        scores[dtype] = vae.score(X[1500:])
        assert vae.module_.decoder[0].weight.dtype == torch.float32  # master weights
    # Same model class and budget; mixed precision costs at most a little likelihood.
    assert abs(scores["bfloat16"] - scores["float32"]) < 0.02 * abs(scores["float32"])


@pytest.mark.parametrize("n_rows, every", [(1280, 2), (576, 1)])
def test_weight_average_samples_every_second_step_of_long_epochs(n_rows, every):
    X = np.random.default_rng(0).normal(size=(n_rows, 3))
    vae = VAEEstimator(hidden_layer_sizes=(), batch_size=64, max_iter=3, early_stopping=False)
    averages = []
    real_step = optim.WeightAverage.step

    def recording(self):
        averages.append(self)
        real_step(self)

    with mock.patch.object(optim.WeightAverage, "step", recording):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.set_params(random_state=0).fit(X)
    # Every training step is counted, in one average for the whole fit.
    assert len(averages) == 3 * (n_rows // 64) and len({id(a) for a in averages}) == 1
    # 20 steps per epoch: every second one updates; 9: every one, so each epoch's end counts.
    assert averages[0].n_updates == 3 * (n_rows // 64) // every


@pytest.mark.parametrize(
    ("n_train", "expected"),
    [
        # One step per epoch was a dozen Adam steps of patience; now it is 500 steps.
        (90, (32, 6667, 167)),
        (3600, (128, 690, 18)),
        # A million rows: a few epochs, and the minimum patience.
        (1_000_000, (128, 3, 10)),
    ],
)
def test_auto_budget_counts_steps_not_epochs(n_train, expected):
    from skvae._trainer import auto_budget

    assert tuple(auto_budget(n_train, "auto", "auto", "auto")) == expected
    # What the user sets is kept as it is.
    assert tuple(auto_budget(n_train, 64, 7, 3)) == (64, 7, 3)


def test_fit_reports_the_resolved_auto_settings():
    X = np.random.default_rng(0).normal(size=(120, 4))
    vae = VAEEstimator(max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        vae.fit(X)
    # 108 training rows after the validation split: batches of 32, 4 steps per epoch.
    assert (vae.batch_size_, vae.max_iter_, vae.n_iter_no_change_) == (32, 3, 125)


@pytest.mark.parametrize(("schedule", "final_lr"), [("constant", 1e-3), ("adaptive", 1e-5)])
def test_adaptive_learning_rate_divides_the_step_at_plateaus(schedule, final_lr):
    X = np.random.default_rng(0).normal(size=(60, 3))
    vae = VAEEstimator(
        hidden_layer_sizes=(4,), learning_rate=schedule, n_iter_no_change=2, tol=10.0,
        max_iter=1000, random_state=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        vae.fit(X)
    # tol=10 nats: only the first epoch counts as progress, and each plateau is 3 epochs.
    assert vae.n_iter_ == (4 if schedule == "constant" else 10)
    assert [g["lr"] for g in vae.optimizer_.param_groups] == pytest.approx([final_lr] * 2)


def test_importance_weighted_training_fits_and_validates_on_its_bound():
    X = load_digits().data[:300]
    params = dict(hidden_layer_sizes=(16,), max_iter=40, random_state=0)
    vae = VAEEstimator(n_train_importance_samples=4, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(X)
    assert vae.validation_scores_[-1] > vae.validation_scores_[0] + 3
    assert vae.best_validation_score_ == max(vae.validation_scores_)
    # The former name trains the same model, with a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(FutureWarning, match="n_train_importance_samples"):
            old = VAEEstimator(n_train_samples=4, **params).fit(X)
    np.testing.assert_array_equal(old.validation_scores_, vae.validation_scores_)


def test_encoder_inputs_computed_once_give_the_model_of_computing_them_each_step():
    # One-hot codes and logs of counts are computed for every row before training; each
    # batch then gathers its rows' inputs, which must be those rows' own.
    rng = np.random.default_rng(0)
    z = rng.normal(size=200)
    X = np.column_stack([
        (z > 0).astype(float) + (z > 1),  # three categories
        rng.poisson(np.exp(1 + z)),
        z + 0.3 * rng.normal(size=200),
    ])  # fmt: skip
    likelihood = {"categorical": [0], "poisson": [1], "gaussian": [2]}

    def fit():
        vae = VAEEstimator(likelihood=likelihood, hidden_layer_sizes=(8,), max_iter=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return vae.set_params(random_state=0).fit(X)

    with mock.patch.object(Trainer, "_with_encoder_inputs", lambda self, data: data):
        each_step = fit()  # computed in every step
    computed = []
    real = Trainer._with_encoder_inputs

    def recorded(self, data):
        computed.append("h" in (out := real(self, data)))
        return out

    with mock.patch.object(Trainer, "_with_encoder_inputs", recorded):
        once = fit()
    assert computed == [True]
    assert once.n_iter_ == each_step.n_iter_ == 5
    for a, b in zip(once.module_.parameters(), each_step.module_.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
