"""The torch model's math against independent references (torch.distributions, scipy)."""

import math
from unittest import mock

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, nbinom
from torch.distributions import Normal, kl_divergence

import skvae._count_likelihoods as count_likelihoods
import skvae._likelihoods as likelihoods
from skvae import VAEModule
from skvae._posteriors import DiagonalGaussian


def _module(
    n_features=6, n_components=2, hidden=(), likelihood="gaussian", cov="spherical", missing=False
):
    # Only the Gaussian family has a covariance_type.
    config = {"name": likelihood, **({"covariance_type": cov} if likelihood == "gaussian" else {})}
    torch.manual_seed(0)
    return VAEModule.from_spec(
        {
            "n_features": n_features,
            "n_components": n_components,
            "hidden_layer_sizes": hidden,
            "activation": "tanh",
            "likelihood": config,
            "missing": missing,
        }
    ).double()


def test_diagonal_gaussian_posterior_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    log_var = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    eps = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    posterior = DiagonalGaussian(torch.cat([mu, log_var], -1))
    std = (0.5 * log_var).exp()
    q = Normal(mu, std)
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(posterior.kl_per_component(), kl_divergence(q, p))
    torch.testing.assert_close(posterior.kl_to_prior(), kl_divergence(q, p).sum(-1))
    torch.testing.assert_close(posterior.mean, mu, rtol=0, atol=0)
    z = posterior.rsample(eps)
    torch.testing.assert_close(z, mu + std * eps)
    torch.testing.assert_close(posterior.log_prob(z), q.log_prob(z).sum(-1))
    # Points away from the posterior's own draws, where the density is small.
    far = 3.0 * torch.randn(50, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(posterior.log_prob(far), q.log_prob(far).sum(-1))


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
        floor = likelihoods.VAR_SMOOTHING  # variance = floor + exp(log_var), unit scale
        module.likelihood.log_var.fill_(math.log(sigma2 - floor))
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
        posterior = module.encode(x)
        mu, log_var = posterior.loc, posterior.log_var
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
    posterior = module.encode(x)
    mu, log_var = posterior.loc, posterior.log_var
    z = mu + (0.5 * log_var).exp() * eps
    var = module.likelihood.variance
    rec = Normal(module.decode(z), var.sqrt()).log_prob(x).sum(-1)
    kl = kl_divergence(Normal(mu, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(-1)
    for beta in (1.0, 0.25):
        expected = -(rec - beta * kl).mean()
        output = module.loss(x, eps, beta)
        torch.testing.assert_close(output.loss, expected)
        torch.testing.assert_close(output.reconstruction, rec)
        torch.testing.assert_close(output.kl, kl)
        # Skipping the NaN search (mask None: known complete) changes nothing on complete data.
        torch.testing.assert_close(module.loss({"x": x, "mask": None}, eps, beta).loss, expected)
    torch.testing.assert_close(module.elbo(x, eps), rec - kl)


def test_complete_loss_of_a_mask_model_sees_every_entry_observed():
    """A model with the mask channel, on complete data: the mask is all ones either way."""
    module = _module(hidden=(8,), cov="diag", missing=True)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
    eps = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    complete = module.loss({"x": x, "mask": None}, eps).loss
    torch.testing.assert_close(complete, module.loss(x, eps).loss)
    x_nan = x.clone()
    x_nan[0, 0] = float("nan")
    assert module.loss(x_nan, eps).loss.isfinite()


@pytest.mark.parametrize("hidden", [(), (5, 3)])
def test_spec_round_trip_rebuilds_the_same_architecture(hidden):
    module = _module(hidden=hidden, likelihood="bernoulli")
    rebuilt = VAEModule.from_spec(module.spec).double()
    assert rebuilt.spec == module.spec
    rebuilt.load_state_dict(module.state_dict())
    x = torch.rand(4, 6, dtype=torch.float64)
    torch.testing.assert_close(rebuilt.encode(x).params, module.encode(x).params)
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in module.parameters()]


def test_inference_zeroes_missing_entries_and_masks_them():
    module = _module(hidden=(8,), cov="diag", missing=True)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    eps = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    x_nan = x.clone()
    x_nan[1, 3] = x_nan[4, 0] = float("nan")
    inferred = module.inference(x_nan, eps)
    expected_mask = torch.ones_like(x)
    expected_mask[1, 3] = expected_mask[4, 0] = 0.0
    torch.testing.assert_close(inferred["mask"], expected_mask, rtol=0, atol=0)
    torch.testing.assert_close(inferred["x"], torch.where(expected_mask > 0, x, 0.0))
    torch.testing.assert_close(inferred["z"], inferred["posterior"].rsample(eps))
    # A bare tensor is the batch {"x": tensor}; the mask given in the batch is used as is.
    given = module.inference({"x": inferred["x"], "mask": expected_mask}, eps)
    torch.testing.assert_close(given["posterior"].params, inferred["posterior"].params)
    out = module.generative(inferred["z"])["out"]
    torch.testing.assert_close(out, module.decode(inferred["z"]))


@pytest.mark.parametrize("private", [True, False])
def test_negative_binomial_draws_follow_the_negative_binomial(monkeypatch, private):
    # Without torch's private _standard_gamma, the gamma variates come from numpy.
    monkeypatch.setattr(count_likelihoods, "USE_PRIVATE_API", private)
    mu = np.array([0.5, 3.0, 20.0, 5.0])
    theta = np.array([0.5, 2.0, 5.0, 50.0])
    family = likelihoods.NegativeBinomial(4)
    with torch.no_grad():
        family.log_theta.copy_(torch.from_numpy(np.log(theta)))
    n = 20_000
    out = torch.from_numpy(np.log(mu)).expand(n, 4)
    gamma = mock.patch.object(torch, "_standard_gamma", wraps=torch._standard_gamma)
    with gamma as spy:
        draws = family.sample(out, torch.Generator().manual_seed(0))
    assert (spy.call_count > 0) == private
    assert draws.dtype == out.dtype
    draws = draws.numpy()
    # scipy's parameters: n = theta successes, p = theta / (theta + mu).
    reference = nbinom(theta, theta / (theta + mu))
    mean, var, _, kurtosis = (np.asarray(m) for m in reference.stats(moments="mvsk"))
    np.testing.assert_allclose(mean, mu)
    np.testing.assert_allclose(var, mu + mu**2 / theta)
    # Within 5 standard errors of the sample mean, the sample variance and each frequency.
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * np.sqrt(var / n))
    se_var = var * np.sqrt((kurtosis + 2) / n)  # Var(s^2) ~ (mu_4 - sigma^4) / n
    assert np.all(np.abs(draws.var(0, ddof=1) - var) < 5 * se_var)
    for k in range(6):
        p = reference.pmf(k)
        assert np.all(np.abs((draws == k).mean(0) - p) < 5 * np.sqrt(p * (1 - p) / n)), k


def _grads(module, parameters, loss):
    module.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in parameters])


def test_iwae_loss_is_the_negative_iw_bound_with_its_decoder_gradient():
    module = _module(n_features=4, hidden=(5,), cov="diag")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    eps = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    # The reference: autograd through logsumexp of the plain weights (Burda et al.).
    reference = -module.iw_bound(x, eps).mean()
    decoder = [*module.decoder.parameters(), *module.likelihood.parameters()]
    expected = _grads(module, decoder, reference)
    loss = module.iwae_loss(x, eps.expand(7, 6, 2))
    torch.testing.assert_close(loss.loss, reference.detach())
    torch.testing.assert_close(_grads(module, decoder, loss.loss), expected)


def test_dreg_encoder_gradient_is_unbiased_for_the_iwae_gradient():
    # DReG and IWAE's own encoder gradient estimate the same gradient (Tucker et al. 2019):
    # their means over many draws agree within their Monte Carlo error.
    module = _module(n_features=3, n_components=1, hidden=(4,), cov="diag")
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    encoder = list(module.encoder.parameters())
    dreg, iwae = [], []
    for _ in range(600):
        eps = torch.randn(5, 4, 1, generator=gen, dtype=torch.float64)
        dreg.append(_grads(module, encoder, module.iwae_loss(x, eps).loss))
        inferred = module.inference(x)
        posterior = inferred["posterior"].expand_samples()
        z = posterior.rsample(eps)
        rec = module.likelihood.log_prob(x.unsqueeze(1).expand(5, 4, 3), module.decode(z))
        log_w = rec + Normal(0, 1).log_prob(z).sum(-1) - posterior.log_prob(z)
        bound = torch.logsumexp(log_w, 1) - math.log(4)
        iwae.append(_grads(module, encoder, -bound.mean()))
    dreg, iwae = torch.stack(dreg), torch.stack(iwae)
    se = (dreg.var(0) / len(dreg) + iwae.var(0) / len(iwae)).sqrt()
    assert ((dreg.mean(0) - iwae.mean(0)).abs() <= 4 * se + 1e-9).all()
    # DReG's point: a lower variance than IWAE's own encoder gradient.
    assert dreg.var(0).sum() < iwae.var(0).sum()
