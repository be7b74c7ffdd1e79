"""Long work shows progress: every estimator that trains takes ``verbose``."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEEstimator, VAEImputer, VAEOutlierDetector

SMALL = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)


def _data():
    X = np.random.default_rng(0).normal(size=(120, 4))
    X_missing = X.copy()
    X_missing[::4, 1] = np.nan
    return X, X_missing


@pytest.mark.parametrize("verbose", [0, 1])
def test_estimator_and_detector_show_a_progress_bar_when_verbose(capsys, verbose):
    X, _ = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        VAEEstimator(verbose=verbose, **SMALL).fit(X)
        VAEOutlierDetector(verbose=verbose, **SMALL).fit(X)
    err = capsys.readouterr().err
    # The bar counts epochs and shows the last validation bound.
    assert (err.count("epoch") >= 2 and "val_elbo" in err) == bool(verbose)


@pytest.mark.parametrize("verbose", [0, 1])
def test_imputer_says_which_vae_it_fits_and_shows_its_bar(capsys, verbose):
    _, X_missing = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # The default: two candidate architectures of n_estimators VAEs each.
        VAEImputer(n_estimators=2, verbose=verbose, random_state=0).fit(X_missing[:40])
        # A given estimator's own verbose=0 does not silence a verbose imputer.
        VAEImputer(VAEEstimator(**SMALL), n_estimators=1, verbose=verbose).fit(X_missing)
    out, err = capsys.readouterr()
    lines = [line.split(" (")[0] for line in out.splitlines() if line.startswith("VAEImputer")]
    expected = [
        "VAEImputer: fitting VAEs 1-2 of 4",  # each candidate's VAEs train together
        "VAEImputer: fitting VAEs 3-4 of 4",
        "VAEImputer: fitting VAE 1 of 1",
    ]
    assert lines == (expected if verbose else [])
    assert ("val_elbo" in err) == bool(verbose)
