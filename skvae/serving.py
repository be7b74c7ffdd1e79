"""Serving a fitted skvae model with MLflow: a pyfunc whose ``predict`` is one of its methods.

MLflow's ``pyfunc`` flavour, which ``mlflow models serve`` and the deployment tools run,
calls ``predict``; a VAE's outputs are ``transform``, ``score_samples`` and the like.
:func:`log_model` stores the model as a skops file, loaded back trusting only the types it
held when it was logged, and the pyfunc as code (MLflow's models from code: nothing is
pickled), with the method to call in its ``model_config``. This module needs MLflow,
which skvae does not depend on: ``pip install mlflow``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import skops.io as sio

try:
    import mlflow.pyfunc
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("skvae.serving needs MLflow: pip install mlflow") from exc

__all__ = ["SkvaePyfunc", "log_model", "trusted_types"]

_ARTIFACT = "model"
# The file MLflow copies into the model and runs to build the pyfunc on loading.
_MODEL_CODE = Path(__file__).with_name("_mlflow_model.py")


def trusted_types(model) -> list[str]:
    """The types a skops file of ``model`` holds beyond skops' defaults, to trust on loading.

    Pass them as ``skops_trusted_types`` to ``mlflow.sklearn.log_model``, or as ``trusted``
    to ``skops.io.load``, for a model you saved yourself.

    Parameters
    ----------
    model : estimator
        A fitted skvae estimator, or a Pipeline holding one.

    Returns
    -------
    types : list of str
        Their names, e.g. ``["skvae._estimator.VAEEstimator"]``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAEEstimator
    >>> from skvae.serving import trusted_types
    >>> X = load_digits().data
    >>> vae = VAEEstimator(hidden_layer_sizes=(16,), tol=0.1, random_state=0).fit(X)
    >>> trusted_types(vae)
    ['skvae._estimator.VAEEstimator']
    """
    return sio.get_untrusted_types(data=sio.dumps(model))


class SkvaePyfunc(mlflow.pyfunc.PythonModel):
    """A fitted skvae model served through the pyfunc flavour's ``predict``.

    MLflow builds it on loading a model that :func:`log_model` logged, and calls
    ``load_context`` once, then ``predict`` for each request. The model's ``model_config``
    says which method ``predict`` calls ("method") and which types its skops file may hold
    ("trusted", from :func:`trusted_types`).
    """

    def load_context(self, context):
        """Load the model from its skops file among the logged artifacts."""
        config = context.model_config
        self.method = config["method"]
        self.model = sio.load(context.artifacts[_ARTIFACT], trusted=list(config["trusted"]))

    def predict(self, context, model_input, params=None):
        """The model's ``method`` on ``model_input`` (rows of X, or codes for decoding)."""
        return getattr(self.model, self.method)(model_input)


def log_model(model, name: str, *, method: str = "transform", **kwargs):
    """Log a fitted skvae model to the active MLflow run as a pyfunc that calls ``method``.

    Parameters
    ----------
    model : estimator
        A fitted skvae estimator, or a Pipeline holding one.
    name : str
        The model's name in the run.
    method : str, default="transform"
        What the pyfunc's ``predict`` returns: any method of ``model`` that takes rows,
        e.g. "transform", "score_samples", "inverse_transform", "predict" or
        "decision_function" (a detector's).
    **kwargs
        Passed to ``mlflow.pyfunc.log_model`` (``input_example``, ``pip_requirements``,
        ``registered_model_name``, ...). Without ``pip_requirements``, MLflow infers them
        by loading the model once, which takes some seconds.

    Returns
    -------
    info : mlflow.models.model.ModelInfo
        Where the model was logged: ``mlflow.pyfunc.load_model(info.model_uri)`` loads it.

    Examples
    --------
    >>> import mlflow  # doctest: +SKIP
    >>> from skvae.serving import log_model  # doctest: +SKIP
    >>> with mlflow.start_run():  # doctest: +SKIP
    ...     info = log_model(vae, "vae", method="score_samples")
    >>> mlflow.pyfunc.load_model(info.model_uri).predict(X)  # doctest: +SKIP
    """
    if not callable(getattr(model, method, None)):
        raise ValueError(f"{type(model).__name__} has no method {method!r} to serve.")
    data = sio.dumps(model)  # serialised once: for its types and for the file
    config = {"method": method, "trusted": sio.get_untrusted_types(data=data)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{_ARTIFACT}.skops"
        path.write_bytes(data)  # log_model copies the file into the model's artifacts
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(_MODEL_CODE),
            artifacts={_ARTIFACT: str(path)},
            model_config=config,
            **kwargs,
        )
