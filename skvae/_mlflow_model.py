"""The code MLflow runs to build a logged skvae pyfunc on loading (``skvae.serving``)."""

import mlflow.models

from skvae.serving import SkvaePyfunc

mlflow.models.set_model(SkvaePyfunc())
