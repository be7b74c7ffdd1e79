"""Bad input gets a clear error in the user's terms; awkward valid input fits or says why."""

import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skvae import VAEEstimator

FAST = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
# Words that would mean a torch internal leaked to the user.
TORCH_WORDS = re.compile(r"tensor|torch|cuda|mat1|mat2|shape \[|size mismatch", re.IGNORECASE)


def _fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAEEstimator(**{**FAST, **params}).fit(X)


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).normal(size=(60, 5))
    return _fit(X), X


def _assert_clear(excinfo, pattern):
    message = str(excinfo.value)
    assert re.search(pattern, message, re.IGNORECASE), message
    assert not TORCH_WORDS.search(message), message


@pytest.mark.parametrize(
    "X, exc, pattern",
    [
        (np.array([[np.nan, np.nan], [2.0, 3.0]]), ValueError, "Row 0 .*no observed value"),
        (np.array([[1.0, np.nan], [2.0, np.nan]]), ValueError, "Column 1 .*no observed value"),
        (np.array([[1.0, np.inf], [2.0, 3.0]]), ValueError, "infinity"),
        (np.array([[1.0, np.inf], [2.0, np.nan]]), ValueError, "infinity"),
        (np.arange(10.0), ValueError, "2D array"),
        (np.zeros((4, 3, 2)), ValueError, "dim 3"),
        (np.array([["a", "b"], ["c", "d"]]), ValueError, "string|convert"),
        (np.empty((0, 3)), ValueError, "0 sample"),
        # A sparse X is taken, but an absent entry is a zero: NaN cannot mark a missing one.
        (sp.csr_matrix(np.diag([1.0, np.nan, 2.0, 3.0])), ValueError, "sparse.*dense"),
    ],
    ids=[
        "nan-row",
        "nan-col",
        "inf",
        "inf-and-nan",
        "1d",
        "3d",
        "strings",
        "no-rows",
        "sparse-nan",
    ],
)
def test_bad_training_data(X, exc, pattern):
    with pytest.raises(exc) as excinfo:
        _fit(X)
    _assert_clear(excinfo, pattern)


@pytest.mark.parametrize("method", ["transform", "score_samples", "score"])
def test_wrong_width_at_prediction_time(fitted, method):
    vae, X = fitted
    with pytest.raises(ValueError) as excinfo:
        getattr(vae, method)(X[:, :3])
    _assert_clear(excinfo, "3 features.*expecting 5")


@pytest.mark.parametrize("method", ["transform", "score_samples"])
def test_missing_values_at_prediction_time(fitted, method):
    # NaN is a missing value: allowed, with finite results; a row with nothing observed
    # and infinity are errors.
    vae, X = fitted
    X = X.copy()
    X[0, 0] = np.nan
    assert np.all(np.isfinite(getattr(vae, method)(X)))
    X[1, :] = np.nan
    with pytest.raises(ValueError) as excinfo:
        getattr(vae, method)(X)
    _assert_clear(excinfo, "Row 1 of X has no observed value")
    X[1, :] = 0.0
    X[2, 3] = np.inf
    with pytest.raises(ValueError) as excinfo:
        getattr(vae, method)(X)
    _assert_clear(excinfo, "infinity")


def test_inverse_transform_wrong_width(fitted):
    vae, _ = fitted
    with pytest.raises(ValueError) as excinfo:
        vae.inverse_transform(np.zeros((3, 5)))
    _assert_clear(excinfo, "5 columns.*n_components=2")


def test_bernoulli_data_outside_unit_interval_at_fit_and_score():
    X = np.random.default_rng(0).uniform(size=(40, 4))
    with pytest.raises(ValueError) as excinfo:
        _fit(X * 2, likelihood="bernoulli")
    _assert_clear(excinfo, r"bernoulli.*\[0, 1\]")
    vae = _fit(X, likelihood="bernoulli")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        vae.score_samples(X - 0.5)


@pytest.mark.parametrize(
    "params",
    [
        {"n_components": 0},
        {"likelihood": "poisson-ish"},
        {"covariance_type": "full"},
        {"hidden_layer_sizes": "wide"},
        {"activation": "swish"},
        {"beta": -1.0},
        {"batch_size": 0},
        {"learning_rate_init": 0.0},
        {"max_iter": 0},
        {"validation_fraction": 1.0},
        {"n_importance_samples": 0},
        {"random_state": "seed"},
    ],
)
def test_bad_parameters_raise_invalid_parameter_error(params):
    with pytest.raises(InvalidParameterError) as excinfo:
        _fit(np.ones((10, 2)), **params)
    assert list(params)[0] in str(excinfo.value)


@pytest.mark.parametrize(
    "params, pattern",
    [
        ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes must be positive"),
        ({"device": "tpu"}, "device='tpu' is not supported"),
        ({"device": "cuda:0"}, "cuda|CUDA"),
    ],
)
def test_parameters_checked_at_fit(params, pattern):
    import torch

    if params.get("device", "").startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=pattern):
        _fit(np.random.default_rng(0).normal(size=(20, 3)), **params)


def test_not_fitted_errors():
    vae = VAEEstimator()
    for call in (
        lambda: vae.transform(np.ones((2, 2))),
        lambda: vae.score_samples(np.ones((2, 2))),
        lambda: vae.inverse_transform(np.ones((2, 2))),
        lambda: vae.sample(2),
    ):
        with pytest.raises(NotFittedError):
            call()


@pytest.mark.parametrize("n", [0, -1, 2.5, "3", True])
def test_sample_needs_a_positive_integer(fitted, n):
    vae, _ = fitted
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        vae.sample(n)


def test_diverging_training_gives_a_clear_error_and_keeps_the_old_model(fitted):
    vae, X = fitted
    before = vae.transform(X)
    huge = np.random.default_rng(1).normal(size=(60, 5))
    vae.set_params(learning_rate_init=1e12, max_iter=50)
    with pytest.raises(ValueError) as excinfo:
        vae.fit(huge)
    _assert_clear(excinfo, "lower learning_rate_init")
    np.testing.assert_array_equal(vae.transform(X), before)
    vae.set_params(**FAST, learning_rate_init=1e-3)


def test_failed_fit_on_bad_data_leaves_the_fitted_model_intact(fitted):
    vae, X = fitted
    before = (vae.transform(X), vae.n_features_in_, vae.n_iter_, vae.module_)
    for bad in (np.full((10, 7), np.nan), np.zeros((0, 5)), np.ones(5)):
        with pytest.raises(ValueError):
            vae.fit(bad)
    assert vae.n_features_in_ == before[1] and vae.n_iter_ == before[2]
    assert vae.module_ is before[3]
    np.testing.assert_array_equal(vae.transform(X), before[0])


def test_single_sample():
    X = np.random.default_rng(0).normal(size=(1, 4))
    with pytest.raises(ValueError, match="n_samples=1 is too few.*early_stopping=False"):
        _fit(X)
    vae = _fit(X, early_stopping=False)
    _assert_all_finite(vae, X)


def _assert_all_finite(vae, X):
    assert np.all(np.isfinite(vae.transform(X)))
    assert np.all(np.isfinite(vae.score_samples(X)))
    assert np.all(np.isfinite(vae.sample(3, random_state=0)))
    assert np.all(np.isfinite(vae.inverse_transform(vae.transform(X))))


def _awkward_cases():
    """Seeded random awkward-but-valid data sets: (name, X)."""
    rng = np.random.default_rng(2024)
    base = rng.normal(size=(40, 4))
    yield "constant-column", np.column_stack([base, np.full(40, 7.0)])
    yield "all-constant", np.full((30, 3), -2.5)
    yield "tiny-1e-30", base * 1e-30
    yield "huge-1e+30", base * 1e30
    yield "mixed-scales", base * np.array([1e-30, 1.0, 1e30, 1e5])
    yield "integers", rng.integers(-5, 5, size=(40, 3))
    yield "duplicated-rows", np.repeat(base[:5], 8, axis=0)
    yield "float32", base.astype(np.float32)
    yield "two-rows", base[:2]
    for i in range(6):  # random shapes, scales, offsets and repeated values
        n, d = rng.integers(2, 60), rng.integers(1, 7)
        X = rng.standard_t(df=2, size=(n, d)) * 10.0 ** rng.uniform(-20, 20, size=d)
        X += 10.0 ** rng.uniform(-5, 25) * rng.choice([-1, 1])
        if rng.uniform() < 0.5:
            X[:, rng.integers(d)] = X[0, 0]
        yield f"random-{i}", X


AWKWARD = list(_awkward_cases())


@pytest.mark.parametrize("name, X", AWKWARD, ids=[name for name, _ in AWKWARD])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_awkward_valid_data_fits_with_finite_outputs(name, X, covariance_type):
    vae = _fit(X, covariance_type=covariance_type, early_stopping=len(X) >= 10)
    _assert_all_finite(vae, X)
    assert np.all(np.isfinite(vae.noise_variance_)) and np.all(vae.noise_variance_ > 0)
    # Draws live on the data's scale: within a few orders of magnitude of its spread.
    spread = np.abs(np.asarray(X, dtype=float)).max() or 1.0
    assert np.abs(vae.sample(50, random_state=0)).max() < 1e4 * spread


def test_awkward_binary_data_with_bernoulli():
    X = np.zeros((20, 3))
    X[::2, 1] = 1.0
    vae = _fit(X, likelihood="bernoulli")
    _assert_all_finite(vae, X)
    assert set(np.unique(vae.sample(100, random_state=0))) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "likelihood, warns",
    [
        ("poisson", True),
        ({"poisson": [0], "bernoulli": [1]}, True),
        ({"gaussian": [0], "bernoulli": [1]}, False),
    ],
)
def test_a_covariance_type_no_family_takes_is_a_warning(likelihood, warns):
    X = np.column_stack([np.arange(30) % 4, np.arange(30) % 2]).astype(float)
    vae = VAEEstimator(likelihood=likelihood, covariance_type="spherical", max_iter=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae.fit(X)
    said = [str(w.message) for w in caught if "covariance_type='spherical'" in str(w.message)]
    assert len(said) == warns
    assert all("ignored" in message for message in said)


@pytest.mark.parametrize("n_components, warns", [(5, True), (4, False)])
def test_more_components_than_modelled_columns_is_a_warning(n_components, warns):
    X = np.random.default_rng(0).normal(size=(40, 5))
    vae = VAEEstimator(n_components, covariates=[4], max_iter=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae.fit(X)
    said = [str(w.message) for w in caught if "n_components=" in str(w.message)]
    assert len(said) == warns
    assert all("4 modelled columns" in message for message in said)


def test_a_value_far_beyond_the_training_range_gets_a_finite_lowest_score():
    # A data-entry error or a sentinel (1e12 where values are a few units) made the
    # encoder's variances overflow: the row scored NaN, and the detector called it normal.
    from skvae import VAEOutlierDetector

    X = np.random.default_rng(0).normal(size=(300, 3))
    new = X[:4].copy()
    new[0, 1], new[1, 2] = 1e12, -1e300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        detector = VAEOutlierDetector(max_iter=20, random_state=0).fit(X)
    for model in (_fit(X), detector):
        scores = model.score_samples(new)
        assert np.isfinite(scores[[0, 2, 3]]).all() and scores[1] == -np.inf  # not NaN
        assert scores[:2].max() < model.score_samples(X).min()
    assert (model.predict(new)[:2] == -1).all()
    assert np.isfinite(_fit(X).transform(new)).all()
