"""Bulk inference: the float32 networks of large calls against the same model in float64.

A call on at least ``_FLOAT32_ROWS`` rows runs the encoder's and decoder's layers in
float32 and everything else in float64; a smaller call runs in float64. The reference here
is the fitted module copied to float64 and applied to all the rows at once, outside the
estimator's batching.
"""

import copy
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEEstimator
from skvae._inference import _FLOAT32_ROWS
from skvae.datasets import make_linear_gaussian

# Bulk results agree with float64 to this fraction of each output column's largest value:
# float32 rounds to 6e-8, and the networks' few layers of sums grow that to ~1e-6.
FLOAT32_TOLERANCE = 1e-5
# Scores are float64 sums of densities at the networks' outputs: those outputs' rounding
# moves them by ~1e-7 of their size, where float32 densities of counts move them by ~1e-5.
SCORE_TOLERANCE = 1e-6
N_ROWS = _FLOAT32_ROWS + 200


def _fit(X, **params):
    vae = VAEEstimator(n_components=3, hidden_layer_sizes=(64, 64), max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return vae.set_params(**params).fit(X)


def _gaussian():
    X, _ = make_linear_gaussian(N_ROWS, n_features=12, random_state=0)
    return X


def _counts():
    rng = np.random.default_rng(0)
    return rng.negative_binomial(2, 0.002, size=(N_ROWS, 30)).astype(np.float64)


def _with_missing(X):
    rng = np.random.default_rng(1)
    X = X.copy()
    X[rng.random(X.shape) < 0.2] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.0  # every row keeps an observed value
    return X


def _reference(vae, method, X):
    """``method`` of ``vae`` on X as the fitted module computes it in float64, all rows at once."""
    module = copy.deepcopy(vae.module_).double().eval()
    likelihood = module.likelihood
    with torch.no_grad():
        if method == "inverse_transform":
            out = likelihood.mean(module.decode(torch.from_numpy(X))).numpy()
            return out * likelihood.scale + likelihood.loc
        x = torch.from_numpy((X - likelihood.loc) / likelihood.scale)
        if method == "transform":
            return module.encode(x).mean[:, : module.n_components].numpy()
        if method == "score_samples":
            eps, _ = vae._noise(vae.n_importance_samples, vae._crn_seed)
            return module.iw_bound(x, eps).numpy() - np.log(likelihood.scale).sum()
        eps, _ = vae._noise(100, vae._crn_seed)  # conditional_mean's default K
        out = module.conditional_mean(x, eps).numpy() * likelihood.scale + likelihood.loc
        return np.where(np.isnan(X), out, X)


def _inputs(vae, method, X):
    return vae.transform(X) if method == "inverse_transform" else X


def _assert_float32_close(actual, reference):
    tolerance = SCORE_TOLERANCE if reference.ndim == 1 else FLOAT32_TOLERANCE
    scale = np.abs(reference).max(axis=0)
    np.testing.assert_array_less(np.abs(actual - reference) / scale, tolerance)


METHODS = ["transform", "inverse_transform", "score_samples", "conditional_mean"]
# Rows, the estimator's parameters, and whether it is fitted on them with entries missing.
DATA = {
    "gaussian": (_gaussian, {}, False),
    # An offset a million times the spread: the rescaling must be float64's.
    "gaussian-offset": (lambda: 1e-3 * _gaussian() + 1e6, {}, False),
    # Differences of log-gamma functions of counts: the densities must be float64's.
    "negative_binomial": (_counts, {"likelihood": "negative_binomial"}, False),
    "bernoulli": (lambda: (_gaussian() > 0).astype(float), {"likelihood": "bernoulli"}, False),
    # A mask channel in the encoder, fed with "all observed" for rows without NaN.
    "missing-values": (_gaussian, {}, True),
}


@pytest.fixture(scope="module", params=list(DATA))
def fitted(request):
    data, params, missing = DATA[request.param]
    X = data()
    return _fit(_with_missing(X) if missing else X, **params), X


@pytest.mark.parametrize("method", METHODS)
def test_bulk_results_are_float64_ones_to_float32_precision(fitted, method):
    vae, X = fitted
    if method == "conditional_mean":
        X = _with_missing(X)
    inputs = _inputs(vae, method, X)
    reference = _reference(vae, method, inputs)
    _assert_float32_close(getattr(vae, method)(inputs), reference)


@pytest.mark.parametrize("method", METHODS)
def test_calls_below_the_threshold_are_float64(fitted, method):
    vae, X = fitted
    if method == "conditional_mean":
        X = _with_missing(X)
    inputs = _inputs(vae, method, X)[: _FLOAT32_ROWS - 1]
    np.testing.assert_allclose(
        getattr(vae, method)(inputs), _reference(vae, method, inputs), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("method", ["transform", "score_samples"])
def test_a_rows_bulk_result_does_not_depend_on_its_batch_beyond_float32(fitted, method):
    vae, X = fitted
    whole = getattr(vae, method)(X)
    perm = np.random.default_rng(0).permutation(len(X))
    _assert_float32_close(getattr(vae, method)(X[perm]), whole[perm])
    # Either side of the threshold: float64 below, float32 from it on.
    below = getattr(vae, method)(X[: _FLOAT32_ROWS - 1])
    _assert_float32_close(below, whole[: _FLOAT32_ROWS - 1])
    np.testing.assert_allclose(getattr(vae, method)(X[:1]), below[:1], rtol=1e-12, atol=1e-12)


def test_sparse_rows_in_bulk_are_float64_ones_to_float32_precision():
    X = _counts()
    vae = _fit(sp.csr_matrix(X), likelihood="negative_binomial")
    for method in ("transform", "score_samples"):
        reference = _reference(vae, method, X)
        _assert_float32_close(getattr(vae, method)(sp.csr_matrix(X)), reference)


def _decoder_dtypes(vae, call) -> set:
    """The dtypes the decoders' first layers compute in during ``call()``."""
    seen = set()
    modules = vae._inference_module()
    layers = [
        next(m for m in module.decoder.modules() if isinstance(m, torch.nn.Linear))
        for module in (modules.exact, modules.bulk)
    ]
    handles = [
        layer.register_forward_hook(lambda _, args, out: seen.add(out.dtype)) for layer in layers
    ]
    try:
        call()
    finally:
        for handle in handles:
            handle.remove()
    return seen


def test_calls_from_the_threshold_on_run_the_networks_in_float32_but_sample():
    vae = _fit(_gaussian())
    Z = np.random.default_rng(0).standard_normal((_FLOAT32_ROWS, 3))
    assert _decoder_dtypes(vae, lambda: vae.inverse_transform(Z)) == {torch.float32}
    assert _decoder_dtypes(vae, lambda: vae.inverse_transform(Z[:-1])) == {torch.float64}
    # Its draws stay those of its seed: float32 outputs could tip their rounding.
    draw = lambda: vae.sample(_FLOAT32_ROWS, random_state=0)  # noqa: E731
    assert _decoder_dtypes(vae, draw) == {torch.float64}
