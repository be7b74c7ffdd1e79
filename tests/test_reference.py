"""Fitted models stay what they were: seeds give the recorded models, scores and samples.

``tests/data/reference.npz`` holds what each case below computes, recorded when the numbers
last changed on purpose. A change that alters what an estimator computes fails here; one
that only moves code does not, and neither does another BLAS or torch build
(``TOLERANCE``). Each case pins its training settings (``PINNED``), so that a change of
defaults does not count as a change of the numbers. To record anew (only for a deliberate
change of the numbers, said in its commit):
``python tests/test_reference.py --record``.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEEstimator, VAEImputer
from skvae._module import VAEModule

REFERENCE = Path(__file__).parent / "data" / "reference.npz"


def _digits():
    X = load_digits().data[:400]
    return X[:, X.std(axis=0) > 0]


def _sparse_binary(n=300, n_features=100, seed=0):
    # About 10% ones: the training loop takes its sparse first-layer path.
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.2, n_features)
    return (rng.uniform(size=(n, n_features)) < p).astype(float)


def _mixed(n=300, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    return np.column_stack(
        [
            z @ rng.normal(size=(2, 3)) + 0.3 * rng.normal(size=(n, 3)),
            rng.poisson(np.exp(0.5 * z[:, :1] + 1)),
            rng.negative_binomial(2, 0.3, size=(n, 1)),
            (z[:, 1:] > 0).astype(float) + (z[:, 1:] > 1),
        ]
    )


PINNED = {
    "batch_size": 128,
    "n_iter_no_change": 10,
    "weight_decay": 0.0,
    "learning_rate": "constant",
    "n_importance_samples": 50,
}

MIXED = {"gaussian": [0, 1, 2], "poisson": [3], "negative_binomial": [4], "categorical": [5]}


def _outputs(vae, X, prefix):
    """Everything a fitted estimator computes that a user sees."""
    Z = vae.transform(X[:50])
    out = {
        "transform": Z,
        "inverse_transform": vae.inverse_transform(Z[:10]),
        "score_samples": vae.score_samples(X[:50]),
        # The model's own draws: the recorded ones predate the training-range constraint.
        "sample": vae.sample(20, random_state=1, constrain=False),
        "loss_curve": np.asarray(vae.loss_curve_),
        "kl_per_component": vae.kl_per_component_,
    }
    if vae.validation_scores_ is not None:
        out["validation_scores"] = np.asarray(vae.validation_scores_)
    if hasattr(vae, "noise_variance_"):
        out["noise_variance"] = vae.noise_variance_
    return {f"{prefix}/{k}": np.asarray(v, dtype=float) for k, v in out.items()}


def _fit(X, **params):
    params = {**PINNED, "hidden_layer_sizes": (16,), "max_iter": 30, "random_state": 0, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAEEstimator(**params).fit(X)


def case_gaussian_diag():
    """The default Gaussian head, one noise variance per pixel: the analytic step."""
    X = _digits()
    return _outputs(_fit(X, n_components=3), X, "gaussian_diag")


def case_linear_spherical():
    """Probabilistic PCA: no hidden layer, one shared noise variance, no early stopping."""
    X = _digits()
    vae = _fit(
        X, hidden_layer_sizes=(), covariance_type="spherical", early_stopping=False, max_iter=40
    )
    return _outputs(vae, X, "linear_spherical")


def case_bernoulli_sparse():
    """Binary data through the sparse first layer, with beta below 1."""
    X = _sparse_binary()
    vae = _fit(X, likelihood="bernoulli", n_components=4, batch_size=32, beta=0.7)
    return _outputs(vae, X, "bernoulli_sparse")


def case_mixed_table():
    """Four families over one table, KL warm-up, weight decay, tanh."""
    X = _mixed()
    vae = _fit(X, likelihood=MIXED, activation="tanh", kl_warmup_iter=5, weight_decay=0.1)
    return _outputs(vae, X, "mixed_table")


def case_continuous_bernoulli_partial_fit():
    """Training continued block by block with partial_fit."""
    X = _digits() / 16
    vae = VAEEstimator(
        likelihood="continuous_bernoulli", hidden_layer_sizes=(16,), random_state=0, **PINNED
    )
    for _ in range(2):
        for block in np.array_split(X, 3):
            vae.partial_fit(block)
    return _outputs(vae, X, "continuous_bernoulli_partial_fit")


def case_warm_start():
    """A second fit that continues the first, with another step size."""
    X = _digits()
    vae = _fit(X, max_iter=10, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.set_params(max_iter=15, learning_rate_init=3e-3).fit(X)
    return _outputs(vae, X, "warm_start")


def case_missing_values():
    """Training with NaN, and the imputer's VAEs trained together and their fills."""
    X = _digits()
    X[np.random.default_rng(0).uniform(size=X.shape) < 0.2] = np.nan
    out = _outputs(_fit(X, n_components=3), X, "missing_values")
    vae = VAEEstimator(hidden_layer_sizes=(16,), max_iter=20, kl_warmup_iter=10, **PINNED)
    imputer = VAEImputer(vae, n_estimators=2, n_importance_samples=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        out["missing_values/imputed"] = imputer.fit_transform(X[:200])
    return out


def case_bfloat16():
    """bfloat16 autocast, which trains through autograd."""
    X = _sparse_binary(seed=1)
    vae = _fit(X, likelihood="bernoulli", precision="bfloat16", max_iter=10)
    return _outputs(vae, X, "bfloat16")


CASES = [value for name, value in sorted(globals().items()) if name.startswith("case_")]

# Each output may differ from its record by this fraction of its largest value: another
# BLAS or torch build sums in another order, and a fit carries the rounding through its
# steps; a change of what is computed moves the outputs far more.
TOLERANCE = 2e-3


def _assert_close(computed, reference):
    for key, value in computed.items():
        scale = np.nanmax(np.abs(reference[key]), initial=0.0) or 1.0
        np.testing.assert_allclose(
            value, reference[key], rtol=0, atol=TOLERANCE * scale, err_msg=key
        )


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__[5:])
def test_case_matches_the_recorded_reference(case):
    reference = np.load(REFERENCE)
    computed = case()
    prefix = case.__name__[5:] + "/"
    assert set(computed) == {k for k in reference.files if k.startswith(prefix)}
    _assert_close(computed, reference)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__[5:])
def test_the_tolerance_covers_rounding_carried_through_a_fit(case, monkeypatch):
    # Rounding noise stand-in: every initial weight moved by about 80 float32 ulps.
    build = VAEModule.from_spec.__func__

    def jittered(cls, spec):
        module = build(cls, spec)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for weight in module.parameters():
                weight.mul_(1 + 1e-5 * torch.randn(weight.shape, generator=generator))
        return module

    monkeypatch.setattr(VAEModule, "from_spec", classmethod(jittered))
    _assert_close(case(), np.load(REFERENCE))


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    REFERENCE.parent.mkdir(exist_ok=True)
    arrays = {}
    for case in CASES:
        arrays.update(case())
    np.savez_compressed(REFERENCE, **arrays)
    print(f"recorded {len(arrays)} arrays from {len(CASES)} cases in {REFERENCE}")
