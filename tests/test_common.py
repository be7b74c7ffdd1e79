"""scikit-learn's own estimator checks, in full, with no expected failures."""

import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_estimators_partial_fit_n_features,
    check_param_validation,
    parametrize_with_checks,
)

from skvae import VAEClusterer, VAEEstimator, VAEImputer, VAEOutlierDetector

ESTIMATORS = [
    # The defaults with an epoch limit: on the checks' tiny data "auto" means 500 steps.
    VAEEstimator(max_iter=10, random_state=0),
    # Probabilistic PCA: linear maps, one shared noise variance, no early stopping.
    VAEEstimator(
        hidden_layer_sizes=(),
        covariance_type="spherical",
        early_stopping=False,
        max_iter=30,
        random_state=0,
    ),
    # A small nonlinear model with warm-up and K = 1 (the ELBO) in score_samples.
    VAEEstimator(
        n_components=3,
        hidden_layer_sizes=(16,),
        activation="tanh",
        kl_warmup_iter=5,
        n_importance_samples=1,
        max_iter=20,
        random_state=0,
    ),
    # The VampPrior: a learned prior, its KL estimated from the drawn z, through autograd.
    VAEEstimator(
        prior="vamp", n_prior_components=4, hidden_layer_sizes=(16,), max_iter=10, random_state=0
    ),
]

IMPUTERS = [
    # A small imputer with its missing indicator, so that both output widths are checked,
    # and with two VAEs, so that the checks also see the combined fill.
    VAEImputer(
        VAEEstimator(hidden_layer_sizes=(16,), max_iter=20, kl_warmup_iter=10),
        n_importance_samples=20,
        n_estimators=2,
        add_indicator=True,
        random_state=0,
    ),
]

DETECTORS = [
    # The detector at its defaults with an epoch limit, as the first estimator above.
    VAEOutlierDetector(max_iter=10, random_state=0),
    # The threshold on all the training rows, so that the checks of fit_predict run too.
    VAEOutlierDetector(
        novelty=False,
        hidden_layer_sizes=(16,),
        max_iter=20,
        n_importance_samples=10,
        random_state=0,
    ),
]

CLUSTERERS = [
    # A small clusterer. check_clustering's 50 rows are too few to judge early stopping
    # on a tenth of them; a larger step trains it in fewer epochs.
    VAEClusterer(
        n_clusters=3,
        hidden_layer_sizes=(16,),
        early_stopping=False,
        max_iter=150,
        learning_rate_init=1e-2,
        random_state=0,
    ),
]


# Some checks fit with few iterations on purpose; a ConvergenceWarning is expected there.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS + IMPUTERS + DETECTORS + CLUSTERERS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# Checks that exercise partial_fit but that parametrize_with_checks yields only for
# classifiers, regressors and clusterers (or only in scikit-learn's own test suite).
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "check",
    [
        check_estimators_partial_fit_n_features,
        check_dataframe_column_names_consistency,
        check_param_validation,
    ],
    ids=lambda check: check.__name__,
)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_partial_fit_passes_sklearn_checks(estimator, check):
    # check_dataframe_column_names_consistency skips partial_fit when early_stopping is
    # on; partial_fit ignores early_stopping, so turn it off to have the check run it.
    # These checks are about input handling, not training: a few epochs are enough.
    estimator = clone(estimator).set_params(early_stopping=False, max_iter=5)
    check(type(estimator).__name__, estimator)


# The detector and the clusterer have no partial_fit; these two checks concern them too.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "check",
    [check_dataframe_column_names_consistency, check_param_validation],
    ids=lambda check: check.__name__,
)
@pytest.mark.parametrize("estimator", DETECTORS + CLUSTERERS, ids=repr)
def test_detector_and_clusterer_pass_sklearn_input_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator).set_params(max_iter=5))
