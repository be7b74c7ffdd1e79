"""skvae.serving: a fitted model logged to MLflow and served through the pyfunc flavour."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("skops")

from skvae import VAEEstimator, VAEOutlierDetector  # noqa: E402
from skvae.serving import log_model, trusted_types  # noqa: E402

pytestmark = pytest.mark.slow


def _fitted(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(load_digits().data[:300])


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's default store is the working directory
    return tmp_path


def test_the_pyfunc_serves_the_method_named_and_unpickles_nothing(tracking):
    X = load_digits().data[:300]
    vae = _fitted(VAEEstimator(hidden_layer_sizes=(16,), max_iter=3, random_state=0))
    with mlflow.start_run():
        scores = log_model(vae, "scores", method="score_samples", pip_requirements=["skvae"])
        codes = log_model(vae, "codes", pip_requirements=["skvae"])
    served = mlflow.pyfunc.load_model(scores.model_uri)
    np.testing.assert_array_equal(served.predict(X[:20]), vae.score_samples(X[:20]))
    Z = mlflow.pyfunc.load_model(codes.model_uri).predict(X[:20])
    np.testing.assert_array_equal(Z, vae.transform(X[:20]))
    # Models from code: the logged model holds the skops file and code, no pickle.
    files = {path.name for path in tracking.rglob("*") if path.is_file()}
    assert "model.skops" in files and "_mlflow_model.py" in files
    assert not any(name.endswith((".pkl", ".pickle", ".cloudpickle")) for name in files)


def test_a_detector_serves_its_labels(tracking):
    X = load_digits().data[:300]
    detector = _fitted(VAEOutlierDetector(hidden_layer_sizes=(16,), max_iter=3, random_state=0))
    with mlflow.start_run():
        info = log_model(detector, "detector", method="predict", pip_requirements=["skvae"])
    labels = mlflow.pyfunc.load_model(info.model_uri).predict(X[:50])
    np.testing.assert_array_equal(labels, detector.predict(X[:50]))


def test_a_method_the_model_lacks_is_refused_before_logging(tracking):
    vae = _fitted(VAEEstimator(hidden_layer_sizes=(16,), max_iter=2, random_state=0))
    with pytest.raises(ValueError, match="VAEEstimator has no method 'predict' to serve"):
        log_model(vae, "vae", method="predict")


def test_trusted_types_are_what_the_skops_file_holds_beyond_its_defaults():
    import skops.io as sio

    vae = _fitted(VAEEstimator(hidden_layer_sizes=(16,), max_iter=2, random_state=0))
    assert trusted_types(vae) == ["skvae._estimator.VAEEstimator"]
    loaded = sio.loads(sio.dumps(vae), trusted=trusted_types(vae))
    np.testing.assert_array_equal(
        loaded.transform(load_digits().data[:5]), vae.transform(load_digits().data[:5])
    )
