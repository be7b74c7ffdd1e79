"""skvae: variational autoencoders as scikit-learn estimators, with PyTorch inside."""

from ._estimator import VAEEstimator
from ._imputer import VAEImputer
from ._likelihoods import LIKELIHOODS
from ._module import VAEModule

__version__ = "0.1.0"

__all__ = ["LIKELIHOODS", "VAEEstimator", "VAEImputer", "VAEModule", "__version__"]
