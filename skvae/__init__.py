"""skvae: variational autoencoders as scikit-learn estimators, with PyTorch inside."""

from ._cluster import VAEClusterer
from ._estimator import VAEEstimator
from ._imputer import VAEImputer
from ._likelihoods import LIKELIHOODS, Likelihood, register_likelihood
from ._module import VAEModule
from ._outlier import VAEOutlierDetector
from ._posteriors import POSTERIORS, Posterior, register_posterior
from ._priors import PRIORS, Prior, register_prior

__version__ = "0.2.0.dev0"

__all__ = [
    "LIKELIHOODS",
    "POSTERIORS",
    "PRIORS",
    "Likelihood",
    "Posterior",
    "Prior",
    "VAEClusterer",
    "VAEEstimator",
    "VAEImputer",
    "VAEModule",
    "VAEOutlierDetector",
    "__version__",
    "register_likelihood",
    "register_posterior",
    "register_prior",
]
