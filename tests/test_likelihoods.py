"""Each observation model against torch.distributions and scipy.stats."""

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import Bernoulli as TorchBernoulli

from skvae._likelihoods import LIKELIHOODS, VAR_SMOOTHING, Bernoulli, Gaussian


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_gaussian_log_prob_matches_scipy(covariance_type):
    rng = np.random.default_rng(0)
    lik = Gaussian(5, covariance_type).double()
    with torch.no_grad():
        lik.log_var.copy_(torch.from_numpy(rng.normal(size=lik.log_var.shape)))
    x, mean = rng.normal(size=(20, 5)), rng.normal(size=(20, 5))
    var = np.broadcast_to(VAR_SMOOTHING + np.exp(lik.log_var.detach().numpy()), (5,))
    expected = stats.norm(mean, np.sqrt(var)).logpdf(x).sum(axis=1)
    got = lik.log_prob(torch.from_numpy(x), torch.from_numpy(mean)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_bernoulli_log_prob_matches_torch_and_scipy():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3, size=(30, 4))
    x = rng.integers(0, 2, size=(30, 4)).astype(float)
    got = Bernoulli(4).log_prob(torch.from_numpy(x), torch.from_numpy(logits)).numpy()
    reference = TorchBernoulli(logits=torch.from_numpy(logits)).log_prob(torch.from_numpy(x))
    np.testing.assert_allclose(got, reference.sum(-1).numpy(), rtol=1e-12)
    p = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(got, stats.bernoulli(p).logpmf(x).sum(axis=1), rtol=1e-10)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_samples_have_the_family_mean_and_support(name):
    lik = LIKELIHOODS[name](3, "diag").double()
    out = torch.tensor([[-1.0, 0.0, 2.0]], dtype=torch.float64).expand(20000, 3)
    gen = torch.Generator().manual_seed(0)
    draws = lik.sample(out, gen).detach()
    mean = lik.mean(out).detach()
    if name == "bernoulli":
        assert set(np.unique(draws.numpy())) <= {0.0, 1.0}
    # Monte Carlo mean within 4 standard errors of the family's mean.
    se = draws.std(dim=0) / np.sqrt(len(draws))
    assert torch.all((draws.mean(dim=0) - mean[0]).abs() < 4 * se)


def test_gaussian_scaling_is_per_feature_for_diag_and_global_for_spherical():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * np.array([1.0, 10.0, 100.0]) + 5
    loc, scale = Gaussian.data_scaling(X, "diag")
    np.testing.assert_allclose(loc, X.mean(axis=0))
    np.testing.assert_allclose(scale, X.std(axis=0))
    _, scale_s = Gaussian.data_scaling(X, "spherical")
    assert np.all(scale_s == scale_s[0])
    np.testing.assert_allclose(scale_s[0] ** 2, np.mean(X.var(axis=0)))


def test_gaussian_scaling_handles_constant_and_huge_columns():
    X = np.column_stack([np.full(10, 3.0), np.linspace(0, 1e200, 10), np.linspace(0, 1, 10)])
    loc, scale = Gaussian.data_scaling(X, "diag")
    assert np.all(np.isfinite(scale)) and np.all(scale > 0)
    assert loc[0] == 3.0
    np.testing.assert_allclose(scale[1], np.std(np.linspace(0, 1, 10)) * 1e200)
    assert scale[0] == scale.max()  # a constant column is measured against the largest
    _, scale_const = Gaussian.data_scaling(np.full((5, 2), 7.0), "diag")
    np.testing.assert_array_equal(scale_const, [1.0, 1.0])


def test_bernoulli_domain_check_names_the_problem():
    Bernoulli.check_domain(np.array([[0.0, 1.0], [0.5, 0.2]]))
    with pytest.raises(ValueError, match=r"bernoulli.*\[0, 1\]"):
        Bernoulli.check_domain(np.array([[0.0, 1.5]]))
