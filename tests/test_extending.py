"""Extending skvae from outside the package: a likelihood, a posterior, a covariate.

Each is one new class (plus a registration where a parameter names it), written here with
nothing but skvae's public names, and each works end to end through the estimator.
"""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from torch import nn
from torch.distributions import Laplace as TorchLaplace
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from skvae import (
    LIKELIHOODS,
    POSTERIORS,
    Likelihood,
    Posterior,
    VAEEstimator,
    register_likelihood,
    register_posterior,
)
from skvae.datasets import linear_gaussian_log_likelihood, make_linear_gaussian


class Laplace(Likelihood):
    """Laplace noise around the decoder output, one learned scale per feature."""

    name = "toy_laplace"
    domain = LIKELIHOODS["gaussian"].domain  # real values, standardised for training

    def __init__(self, n_features, **settings):
        super().__init__(n_features, **settings)
        self.log_scale = nn.Parameter(torch.zeros(n_features))

    def log_prob(self, x, out, mask=None):
        log_p = TorchLaplace(out, self.log_scale.exp()).log_prob(x)
        return log_p.sum(-1) if mask is None else (log_p * mask).sum(-1)

    def mean(self, out):
        return out

    def sample(self, out, generator):
        u = torch.rand(out.shape, generator=generator, dtype=out.dtype) - 0.5
        return out - self.log_scale.exp() * u.sign() * torch.log1p(-2 * u.abs())


class FullCovariance(Posterior):
    """N(mu(x), L(x) L(x)^T) with a full lower-triangular Cholesky factor L."""

    name = "toy_full_covariance"

    @staticmethod
    def n_params(n_components):
        return n_components + n_components * (n_components + 1) // 2

    def __init__(self, params):
        super().__init__(params)
        width = params.shape[-1]
        d = int((math.sqrt(9 + 8 * width) - 3) / 2)
        rows, cols = torch.tril_indices(d, d)
        tril = params.new_zeros(*params.shape[:-1], d, d)
        tril[..., rows, cols] = params[..., d:]
        diagonal = torch.diagonal(tril, dim1=-2, dim2=-1)
        self.loc = params[..., :d]
        self.scale_tril = tril - torch.diag_embed(diagonal) + torch.diag_embed(diagonal.exp())

    @property
    def mean(self):
        return self.loc

    def rsample(self, eps):
        return self.loc + (self.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def log_prob(self, z):
        return MultivariateNormal(self.loc, scale_tril=self.scale_tril).log_prob(z)

    def kl_per_component(self):
        variance = (self.scale_tril**2).sum(-1)
        return 0.5 * (variance + self.loc**2 - 1.0 - variance.log())

    def kl_to_prior(self):
        log_det = 2 * torch.diagonal(self.scale_tril, dim1=-2, dim2=-1).log().sum(-1)
        trace = (self.scale_tril**2).sum((-2, -1))
        d = self.loc.shape[-1]
        return 0.5 * (trace + (self.loc**2).sum(-1) - d - log_det)


@pytest.fixture(autouse=True)
def _registered():
    register_likelihood(Laplace)
    register_posterior(FullCovariance)
    yield
    LIKELIHOODS.pop(Laplace.name)
    POSTERIORS.pop(FullCovariance.name)


def _fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAEEstimator(random_state=0, **params).fit(X)


def test_the_toy_laplace_log_density_is_scipys():
    lik = Laplace(3).double()
    with torch.no_grad():
        lik.log_scale.copy_(torch.tensor([0.1, -0.4, 0.7], dtype=torch.float64))
    rng = np.random.default_rng(0)
    x, out = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    expected = stats.laplace(out, np.exp([0.1, -0.4, 0.7])).logpdf(x).sum(-1)
    got = lik.log_prob(torch.from_numpy(x), torch.from_numpy(out)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_a_registered_likelihood_fits_scores_samples_and_pickles():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1500, 1))
    X = z @ rng.normal(size=(1, 4)) + rng.laplace(scale=0.3, size=(1500, 4))
    X_train, X_test = X[:1200], X[1200:]
    common = dict(n_components=1, hidden_layer_sizes=(16,), max_iter=150)
    laplace = _fit(X_train, likelihood="toy_laplace", **common)
    gaussian = _fit(X_train, likelihood="gaussian", **common)
    # Both are densities on the same data: the right noise model scores higher, held out.
    assert laplace.score(X_test) > gaussian.score(X_test) + 0.05 * X.shape[1]
    assert laplace.sample(5, random_state=0).shape == (5, 4)
    mixed = _fit(X_train, likelihood={"toy_laplace": [0, 1], "gaussian": [2, 3]}, **common)
    assert np.isfinite(mixed.score(X_test))
    loaded = pickle.loads(pickle.dumps(laplace))
    np.testing.assert_array_equal(loaded.score_samples(X_test), laplace.score_samples(X_test))
    # The class itself works as the parameter too.
    assert _fit(X_train, likelihood=Laplace, **{**common, "max_iter": 2}).n_iter_ == 2


def test_the_toy_posterior_matches_torch_distributions():
    torch.manual_seed(0)
    params = torch.randn(7, FullCovariance.n_params(2), dtype=torch.float64)
    q = FullCovariance(params)
    reference = MultivariateNormal(q.loc, scale_tril=q.scale_tril)
    prior = MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2).double())
    torch.testing.assert_close(q.kl_to_prior(), kl_divergence(reference, prior))
    marginals = Normal(q.loc, reference.variance.sqrt())
    standard = Normal(torch.zeros(()).double(), torch.ones(()).double())
    torch.testing.assert_close(q.kl_per_component(), kl_divergence(marginals, standard))
    eps = torch.randn(7, 2, dtype=torch.float64)
    torch.testing.assert_close(q.rsample(eps), q.loc + (q.scale_tril @ eps[..., None])[..., 0])
    # K shared draws per row, as the importance-weighted bound takes them.
    shared = torch.randn(5, 2, dtype=torch.float64)
    z = q.expand_samples().rsample(shared.unsqueeze(0))
    assert z.shape == (7, 5, 2)
    torch.testing.assert_close(z[3, 4], q.rsample(shared[4].expand(7, 2))[3])


def test_a_registered_posterior_fits_a_linear_gaussian_process_to_its_likelihood():
    X, model = make_linear_gaussian(3000, n_features=5, n_components=2, random_state=0)
    X_train, X_test = X[:2500], X[2500:]
    vae = _fit(
        X_train, n_components=2, posterior="toy_full_covariance", hidden_layer_sizes=(),
        max_iter=400, learning_rate_init=3e-3,
    )  # fmt: skip
    exact = linear_gaussian_log_likelihood(X_test, model).mean()
    assert vae.score(X_test) > exact - 0.1
    assert vae.module_.posterior is FullCovariance
    assert vae.transform(X_test[:4]).shape == (4, 2)
    loaded = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(loaded.transform(X_test), vae.transform(X_test))


class BatchVAE(VAEEstimator):
    """A VAE conditioned on its last column (a batch label), which it does not model."""

    def _covariate_columns(self):
        return {"batch": [self.n_features_in_ - 1]}

    def _decoding_covariates(self, n_rows, values=None):
        return {"batch": np.zeros((n_rows, 1))}  # decode every row as if from batch 0


def test_a_covariate_conditions_the_encoder_and_decoder_without_being_modelled():
    rng = np.random.default_rng(0)
    n = 2000
    z = rng.normal(size=(n, 1))
    batch = rng.integers(0, 2, size=(n, 1)).astype(float)
    # The batch shifts every feature by 3: a VAE that sees it need not encode it.
    X = np.hstack([z @ rng.normal(size=(1, 4)) + 3 * batch + 0.2 * rng.normal(size=(n, 4)), batch])
    common = dict(n_components=1, hidden_layer_sizes=(32,), max_iter=200)
    conditioned = BatchVAE(random_state=0, **common)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        conditioned.fit(X)
    assert conditioned.module_.spec["covariates"] == {"batch": 1}
    code = conditioned.transform(X)
    # The code carries z, not the batch: it correlates with z and hardly with the batch.
    assert abs(np.corrcoef(code[:, 0], z[:, 0])[0, 1]) > 0.9
    assert abs(np.corrcoef(code[:, 0], batch[:, 0])[0, 1]) < 0.2
    # Decoded as batch 0, the rows of batch 1 lose their shift of 3.
    decoded = conditioned.inverse_transform(code)
    assert decoded.shape == X.shape and np.all(decoded[:, -1] == 0)
    shift = decoded[batch[:, 0] == 1, :4].mean() - X[batch[:, 0] == 1, :4].mean()
    assert shift == pytest.approx(-3, abs=0.3)
    assert np.isfinite(conditioned.score(X))
    draws = conditioned.sample(4, random_state=0)
    assert draws.shape == (4, 5) and np.all(draws[:, -1] == 0)
