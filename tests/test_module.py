"""The torch model's math against independent references (torch.distributions, scipy)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch.distributions import Normal, kl_divergence

from skvae import VAEModule
from skvae._module import InputLinear, gaussian_kl


def _module(
    n_features=6, n_components=2, hidden=(), likelihood="gaussian", cov="spherical", missing=False
):
    torch.manual_seed(0)
    return VAEModule.from_spec(
        {
            "n_features": n_features,
            "n_components": n_components,
            "hidden_layer_sizes": hidden,
            "activation": "tanh",
            "likelihood": {"name": likelihood, "covariance_type": cov},
            "missing": missing,
        }
    ).double()


def test_gaussian_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    log_var = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    q = Normal(mu, (0.5 * log_var).exp())
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(gaussian_kl(mu, log_var), kl_divergence(q, p))


def _set_exact_linear_gaussian(module, rng):
    """Give a linear module the parameters of a PPCA model and its exact posterior.

    W has orthogonal columns, so the posterior covariance is diagonal and the encoder can
    represent p(z | x) exactly; the log importance weight is then log p(x) for every z.
    """
    d, k = module.n_features, module.n_components
    q, _ = np.linalg.qr(rng.normal(size=(d, k)))
    W = q * np.array([2.0, 0.7])[:k]
    b = rng.normal(size=d)
    sigma2 = 0.3
    M = W.T @ W / sigma2 + np.eye(k)  # diagonal because W's columns are orthogonal
    post_cov = np.diag(1.0 / np.diag(M))
    A = post_cov @ W.T / sigma2
    with torch.no_grad():
        enc = module.encoder[0]  # its weight is input-major: (n_features, 2 * n_components)
        enc.weight.copy_(torch.from_numpy(np.vstack([A, np.zeros((k, d))]).T))
        enc.bias.copy_(torch.from_numpy(np.concatenate([-A @ b, np.log(np.diag(post_cov))])))
        dec = module.decoder[0]
        dec.weight.copy_(torch.from_numpy(W))
        dec.bias.copy_(torch.from_numpy(b))
        module.likelihood.log_var.fill_(math.log(sigma2 - 1e-6))  # variance = floor + exp
    return multivariate_normal(mean=b, cov=W @ W.T + sigma2 * np.eye(d))


def test_elbo_and_iw_bound_are_exact_with_the_exact_posterior():
    rng = np.random.default_rng(0)
    module = _module()
    truth = _set_exact_linear_gaussian(module, rng)
    X = truth.rvs(size=40, random_state=1)
    x = torch.from_numpy(X)
    gen = torch.Generator().manual_seed(0)
    expected = truth.logpdf(X)
    # The log importance weight is log p(x) for every z: any K gives the exact value.
    for k in (1, 7):
        eps_k = torch.randn(k, 2, generator=gen, dtype=torch.float64)
        iw = module.iw_bound(x, eps_k).detach().numpy()
        np.testing.assert_allclose(iw, expected, rtol=1e-10)
    # The analytic-KL ELBO estimate is exact only on average over the noise.
    with torch.no_grad():
        draws = [
            module.elbo(x, torch.randn(40, 2, generator=gen, dtype=torch.float64))
            for _ in range(1000)
        ]
    elbos = torch.stack(draws).numpy()
    se = elbos.std(axis=0) / np.sqrt(len(elbos))
    assert np.all(np.abs(elbos.mean(axis=0) - expected) < 5 * se + 1e-9)


def test_iw_bound_is_at_least_the_elbo_and_tightens_towards_log_px():
    rng = np.random.default_rng(1)
    module = _module()
    truth = _set_exact_linear_gaussian(module, rng)
    # Spoil the encoder so the bounds are no longer exact.
    with torch.no_grad():
        module.encoder[0].bias[:2] += 0.3
        module.encoder[0].bias[2:] += 0.5
    X = truth.rvs(size=30, random_state=2)
    x = torch.from_numpy(X)
    gen = torch.Generator().manual_seed(3)
    eps = torch.randn(5000, 2, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        # Per row: log mean_k w_k >= mean_k log w_k (Jensen), with the same K draws.
        per_sample = torch.stack([module.iw_bound(x, e[None]) for e in eps[:50]], dim=1)
        iw_50 = module.iw_bound(x, eps[:50])
        assert torch.all(iw_50 >= per_sample.mean(dim=1) - 1e-12)
        # K = 1 is log p(x, z) - log q(z | x) at z = mu + sigma * eps.
        mu, log_var = module.encode(x)
        std = (0.5 * log_var).exp()
        z = mu + std * eps[:1]
        var = module.likelihood.variance
        log_joint = Normal(module.decode(z), var.sqrt()).log_prob(x).sum(-1) + Normal(
            0.0, 1.0
        ).log_prob(z).sum(-1)
        expected_k1 = log_joint - Normal(mu, std).log_prob(z).sum(-1)
        torch.testing.assert_close(module.iw_bound(x, eps[:1]), expected_k1)
        iw_5000 = module.iw_bound(x, eps).numpy()
    exact = truth.logpdf(X)
    elbo_mean = per_sample.mean(dim=1).numpy()
    gap_elbo = np.mean(exact - elbo_mean)
    gap_iw = np.mean(exact - iw_5000)
    assert gap_elbo > 0.1  # the spoiled encoder makes the ELBO visibly loose
    # A stochastic lower bound: its estimate may overshoot log p(x) by Monte Carlo noise.
    assert abs(gap_iw) < 0.05 * gap_elbo


def test_loss_is_the_mean_negative_beta_elbo():
    module = _module(hidden=(8,))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
    eps = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    mu, log_var = module.encode(x)
    z = mu + (0.5 * log_var).exp() * eps
    var = module.likelihood.variance
    rec = Normal(module.decode(z), var.sqrt()).log_prob(x).sum(-1)
    kl = kl_divergence(Normal(mu, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(-1)
    for beta in (1.0, 0.25):
        expected = -(rec - beta * kl).mean()
        torch.testing.assert_close(module.loss(x, eps, beta), expected)
        # Skipping the NaN search changes nothing on complete data.
        torch.testing.assert_close(module.loss(x, eps, beta, complete=True), expected)
    torch.testing.assert_close(module.elbo(x, eps), rec - kl)


def test_complete_loss_of_a_mask_model_sees_every_entry_observed():
    """A model with the mask channel, on complete data: the mask is all ones either way."""
    module = _module(hidden=(8,), cov="diag", missing=True)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
    eps = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(module.loss(x, eps, complete=True), module.loss(x, eps))
    x_nan = x.clone()
    x_nan[0, 0] = float("nan")
    assert module.loss(x_nan, eps).isfinite()


@pytest.mark.parametrize("hidden", [(), (5, 3)])
def test_spec_round_trip_rebuilds_the_same_architecture(hidden):
    module = _module(hidden=hidden, likelihood="bernoulli", cov="diag")
    rebuilt = VAEModule.from_spec(module.spec).double()
    rebuilt.load_state_dict(module.state_dict())
    x = torch.rand(4, 6, dtype=torch.float64)
    torch.testing.assert_close(rebuilt.encode(x), module.encode(x))
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in module.parameters()]


def test_input_linear_is_an_affine_map_with_an_input_major_weight():
    torch.manual_seed(0)
    layer = InputLinear(5, 3)
    assert layer.weight.shape == (5, 3) and layer.weight.is_contiguous()
    x = torch.randn(4, 5)
    expected = x.numpy() @ layer.weight.detach().numpy() + layer.bias.detach().numpy()
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    # The initial values are nn.Linear's, transposed, from the same random numbers.
    torch.manual_seed(0)
    reference = torch.nn.Linear(5, 3)
    torch.testing.assert_close(layer.weight.detach(), reference.weight.detach().t())
    torch.testing.assert_close(layer.bias.detach(), reference.bias.detach())


def _sparse_case(name, rng):
    """A likelihood config and data of 80 mostly-zero encoder inputs."""
    if name == "bernoulli":
        return {"name": name}, (rng.random((50, 80)) < 0.1).astype(np.float64)
    if name == "poisson":
        return {"name": name}, rng.poisson(0.15, size=(50, 80)).astype(np.float64)
    # 8 columns of 10 categories: one-hot inputs, one in ten non-zero.
    return {"name": name, "n_categories": [10] * 8}, rng.integers(0, 10, (50, 8)).astype(float)


@pytest.mark.parametrize("name", ["bernoulli", "poisson", "categorical"])
def test_sparse_first_layer_gives_the_dense_loss_and_gradients(name):
    from skvae._training import SparseInputs

    rng = np.random.default_rng(0)
    likelihood, X = _sparse_case(name, rng)
    torch.manual_seed(0)
    module = VAEModule.from_spec(
        {
            "n_features": X.shape[1],
            "n_components": 3,
            "hidden_layer_sizes": (16,),
            "activation": "relu",
            "likelihood": {"covariance_type": "diag", **likelihood},
            "missing": False,
        }
    )
    X = torch.from_numpy(X).float()
    sparse = SparseInputs.build(module, X)
    assert sparse is not None
    rows = torch.from_numpy(rng.permutation(50))
    epoch = sparse.epoch(rows)
    x, eps = X[rows[20:40]], torch.randn(20, 3)
    params = list(module.parameters())
    dense_loss = module.loss(x, eps, complete=True)
    dense_grads = torch.autograd.grad(dense_loss, params)
    sparse_loss = module.loss(x, eps, complete=True, sparse=sparse.batch(epoch, 20, 40, "cpu"))
    sparse_grads = torch.autograd.grad(sparse_loss, params)
    torch.testing.assert_close(sparse_loss, dense_loss)
    for got, expected in zip(sparse_grads, dense_grads, strict=True):
        torch.testing.assert_close(got, expected)
        assert got.stride() == expected.stride()
