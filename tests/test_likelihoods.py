"""Each observation model against torch.distributions and scipy.stats."""

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats
from torch.distributions import Bernoulli as TorchBernoulli
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import ContinuousBernoulli as TorchContinuousBernoulli

from skvae._family_data import OpenUnitInterval, Positive
from skvae._likelihoods import (
    LIKELIHOODS,
    VAR_SMOOTHING,
    Bernoulli,
    Categorical,
    ContinuousBernoulli,
    Gaussian,
    HurdleLogNormal,
    LogitNormal,
    LogNormal,
    Mixed,
    NegativeBinomial,
    Poisson,
    StudentT,
    ZeroInflatedNegativeBinomial,
    build_likelihood,
    prepare_likelihood,
)

RNG = np.random.default_rng(0)


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_gaussian_log_prob_matches_scipy(covariance_type):
    lik = Gaussian(5, covariance_type).double()
    with torch.no_grad():
        lik.log_var.copy_(_t(RNG.normal(size=lik.log_var.shape)))
    x, mean = RNG.normal(size=(20, 5)), RNG.normal(size=(20, 5))
    var = np.broadcast_to(VAR_SMOOTHING + np.exp(lik.log_var.detach().numpy()), (5,))
    expected = stats.norm(mean, np.sqrt(var)).logpdf(x).sum(axis=1)
    got = lik.log_prob(_t(x), _t(mean)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_bernoulli_log_prob_matches_torch_and_scipy():
    logits = RNG.normal(scale=3, size=(30, 4))
    x = RNG.integers(0, 2, size=(30, 4)).astype(float)
    got = Bernoulli(4).log_prob(_t(x), _t(logits)).numpy()
    reference = TorchBernoulli(logits=_t(logits)).log_prob(_t(x))
    np.testing.assert_allclose(got, reference.sum(-1).numpy(), rtol=1e-12)
    p = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(got, stats.bernoulli(p).logpmf(x).sum(axis=1), rtol=1e-10)


# Logits from far out to the unstable region around 0 (lambda = 0.5) and 0 itself. Beyond
# |logit| ~ 20 torch loses digits computing 1 - lambda: a high-precision formula is the
# reference there (below).
CB_LOGITS = [-30.0, -4.0, -0.3, -0.011, -0.009, -1e-3, -1e-6, 0.0, 1e-7, 2e-3, 0.0099, 0.7, 20.0]


def test_continuous_bernoulli_log_prob_and_mean_match_torch_near_and_far_from_half():
    logits = _t(CB_LOGITS)[:, None]
    x = _t([0.0, 0.13, 0.5, 0.99, 1.0])[None, :]
    lik = ContinuousBernoulli(1)
    reference = TorchContinuousBernoulli(logits=logits.expand(-1, 5))
    got = torch.stack([lik.log_prob(x[:, j : j + 1], logits) for j in range(5)], dim=1)
    torch.testing.assert_close(got, reference.log_prob(x.expand(len(CB_LOGITS), -1)))
    torch.testing.assert_close(lik.mean(logits)[:, 0], reference.mean[:, 0])
    # The normaliser is smooth through lambda = 0.5: no jump where the Taylor branch starts.
    edge = _t([0.01 - 1e-9, 0.01 + 1e-9])[:, None]
    values = lik.log_prob(_t([[0.3]]).expand(2, 1), edge)
    assert abs(values[0] - values[1]) < 1e-8


@pytest.mark.parametrize("logit", [-80.0, 45.0, 200.0])
def test_continuous_bernoulli_far_out_matches_high_precision_formula(logit):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 200
    lam = 1 / (1 + mpmath.exp(-logit))
    x = mpmath.mpf("0.3")
    log_c = mpmath.log(2 * mpmath.atanh(1 - 2 * lam) / (1 - 2 * lam))
    expected = float(x * mpmath.log(lam) + (1 - x) * mpmath.log(1 - lam) + log_c)
    got = ContinuousBernoulli(1).log_prob(_t([[0.3]]), _t([[logit]])).item()
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("logit", [-6.0, -1e-3, 0.0, 0.4, 25.0])
def test_continuous_bernoulli_samples_follow_its_cdf(logit):
    lik = ContinuousBernoulli(1)
    gen = torch.Generator().manual_seed(0)
    draws = lik.sample(_t(np.full((4000, 1), logit)), gen).numpy().ravel()
    assert draws.min() >= 0 and draws.max() <= 1
    reference = TorchContinuousBernoulli(logits=_t(logit))
    result = stats.kstest(draws, lambda v: reference.cdf(_t(v)).numpy())
    assert result.pvalue > 1e-3


def _student_t(df):
    lik = StudentT(3).double()
    with torch.no_grad():
        lik.log_df.copy_(_t(np.log(df)))
    return lik


def test_student_t_log_prob_matches_scipy_with_missing_entries():
    df = np.array([0.7, 3.0, 40.0])
    x = RNG.standard_t(2.0, size=(6, 3)) * 5
    out = RNG.normal(size=(6, 6))
    out[0, 3:] = -30.0  # a scale at its floor
    mask = (RNG.uniform(size=(6, 3)) > 0.3).astype(float)
    scale = np.logaddexp(0.0, out[:, 3:]) + np.sqrt(VAR_SMOOTHING)
    expected = (stats.t(df, out[:, :3], scale).logpdf(x) * mask).sum(axis=1)
    got = _student_t(df).log_prob(_t(x), _t(out), _t(mask)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("df", [1.5, 4.0, 30.0])
def test_student_t_samples_follow_scipys_cdf(df):
    out = np.tile([[2.0, 0.5]], (4000, 1))
    lik = StudentT(1).double()
    with torch.no_grad():
        lik.log_df.fill_(np.log(df))
    draws = lik.sample(_t(out), torch.Generator().manual_seed(0)).numpy().ravel()
    reference = stats.t(df, 2.0, np.logaddexp(0.0, 0.5) + np.sqrt(VAR_SMOOTHING))
    assert stats.kstest(draws, reference.cdf).pvalue > 1e-3
    assert lik.mean(_t(out[:1])).item() == 2.0


def _logit_normal_parts(out, loc, scale):
    """Mean and standard deviation of logit(x) for LogitNormal's decoder output ``out``."""
    p = len(loc)
    log_var = np.clip(out[:, p:], np.log(1e-6), np.log(1e6)) + 2 * np.log(scale)
    return loc + scale * out[:, :p], np.exp(0.5 * log_var)


def test_logit_normal_log_prob_mean_and_draws_match_scipy():
    loc, scale = np.array([-2.0, 0.0, 1.5]), np.array([1.0, 0.5, 2.0])
    lik = LogitNormal(3, transformed_loc=loc.tolist(), transformed_scale=scale.tolist()).double()
    x = special.expit(RNG.normal(-1, 2, size=(6, 3)))
    out = RNG.normal(size=(6, 6))
    mask = (RNG.uniform(size=(6, 3)) > 0.3).astype(float)
    m, s = _logit_normal_parts(out, loc, scale)
    # The density of x: the normal density of logit(x) times d logit(x) / dx.
    density = stats.norm(m, s).logpdf(special.logit(x)) - np.log(x * (1 - x))
    got = lik.log_prob(_t(x * mask), _t(out), _t(mask)).numpy()
    np.testing.assert_allclose(got, (density * mask).sum(axis=1), rtol=1e-12)
    expected = [
        [integrate.quad(lambda e, a=a, b=b: special.expit(a + b * e) * stats.norm.pdf(e),
                        -np.inf, np.inf)[0] for a, b in zip(m_row, s_row, strict=True)]
        for m_row, s_row in zip(m, s, strict=True)
    ]  # fmt: skip
    np.testing.assert_allclose(lik.mean(_t(out)).numpy(), expected, atol=1e-6)
    draws = lik.sample(_t(np.tile(out[:1], (4000, 1))), torch.Generator().manual_seed(0)).numpy()
    for j in range(3):
        cdf = stats.norm(m[0, j], s[0, j]).cdf
        assert stats.kstest(special.logit(draws[:, j]), cdf).pvalue > 1e-3


def test_lognormal_log_prob_mean_and_draws_match_scipy():
    loc, scale = np.array([2.0, 0.0, -1.0]), np.array([1.0, 0.5, 2.0])
    lik = LogNormal(3, transformed_loc=loc.tolist(), transformed_scale=scale.tolist()).double()
    x = RNG.lognormal(0.5, 1.5, size=(6, 3))
    out = RNG.normal(size=(6, 6))
    mask = (RNG.uniform(size=(6, 3)) > 0.3).astype(float)
    m, s = _logit_normal_parts(out, loc, scale)  # the same parameterisation of log(x)
    density = stats.lognorm(s, scale=np.exp(m)).logpdf(x)
    got = lik.log_prob(_t(x * mask), _t(out), _t(mask)).numpy()
    np.testing.assert_allclose(got, (density * mask).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(
        lik.mean(_t(out)).numpy(), stats.lognorm(s, scale=np.exp(m)).mean(), rtol=1e-12
    )
    draws = lik.sample(_t(np.tile(out[:1], (4000, 1))), torch.Generator().manual_seed(0)).numpy()
    for j in range(3):
        reference = stats.lognorm(s[0, j], scale=np.exp(m[0, j]))
        assert stats.kstest(draws[:, j], reference.cdf).pvalue > 1e-3
    with pytest.raises(ValueError, match="needs positive values.*hurdle_lognormal"):
        Positive.check("lognormal", np.array([[2.0], [0.0]]))


def test_logit_normal_refuses_exact_zeros_and_ones_and_learns_the_logit_scale():
    with pytest.raises(ValueError, match="strictly between 0 and 1.*continuous_bernoulli"):
        OpenUnitInterval.check("logit_normal", np.array([[0.2], [0.0]]))
    x = special.expit(RNG.normal(1.0, 3.0, size=(5000, 1)))
    learned = OpenUnitInterval.learn("logit_normal", x)
    np.testing.assert_allclose(learned["transformed_loc"], [1.0], atol=0.15)
    np.testing.assert_allclose(learned["transformed_scale"], [3.0], atol=0.15)


def test_poisson_log_prob_matches_scipy_and_samples_are_counts():
    log_rate = RNG.normal(size=(25, 3))
    x = RNG.poisson(3, size=(25, 3)).astype(float)
    got = Poisson(3).log_prob(_t(x), _t(log_rate)).numpy()
    expected = stats.poisson(np.exp(log_rate)).logpmf(x).sum(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    out = _t(np.log([[0.5, 4.0, 30.0]])).expand(20000, 3)
    draws = Poisson(3).sample(out, torch.Generator().manual_seed(0)).numpy()
    assert np.all(draws == np.round(draws)) and draws.min() >= 0
    np.testing.assert_allclose(draws.mean(axis=0), [0.5, 4.0, 30.0], rtol=0.05)


def test_negative_binomial_log_prob_matches_scipy_and_samples_are_overdispersed():
    lik = NegativeBinomial(3).double()
    theta = np.array([0.5, 2.0, 40.0])
    with torch.no_grad():
        lik.log_theta.copy_(_t(np.log(theta)))
    log_mu = RNG.normal(1.0, 1.0, size=(25, 3))
    x = RNG.poisson(5, size=(25, 3)).astype(float)
    got = lik.log_prob(_t(x), _t(log_mu)).detach().numpy()
    mu = np.exp(log_mu)
    expected = stats.nbinom(theta, theta / (theta + mu)).logpmf(x).sum(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    out = _t(np.log([[3.0, 3.0, 3.0]])).expand(40000, 3)
    draws = lik.sample(out, torch.Generator().manual_seed(0)).detach().numpy()
    assert np.all(draws == np.round(draws)) and draws.min() >= 0
    np.testing.assert_allclose(draws.mean(axis=0), 3.0, rtol=0.05)
    np.testing.assert_allclose(draws.var(axis=0), 3.0 + 9.0 / theta, rtol=0.1)


def test_zero_inflated_negative_binomial_matches_scipy_mixture():
    lik = ZeroInflatedNegativeBinomial(3).double()
    theta = np.array([0.5, 2.0, 40.0])
    with torch.no_grad():
        lik.log_theta.copy_(_t(np.log(theta)))
    log_mu = RNG.normal(1.0, 1.0, size=(25, 3))
    logit = RNG.normal(size=(25, 3))
    x = RNG.poisson(2, size=(25, 3)).astype(float)  # about 14% zeros
    out = _t(np.hstack([log_mu, logit]))
    mu, pi = np.exp(log_mu), 1 / (1 + np.exp(-logit))
    nb = stats.nbinom(theta, theta / (theta + mu))
    pmf = np.where(x == 0, pi + (1 - pi) * nb.pmf(0), (1 - pi) * nb.pmf(x))
    got = lik.log_prob(_t(x), out).detach().numpy()
    np.testing.assert_allclose(got, np.log(pmf).sum(axis=1), rtol=1e-10)
    np.testing.assert_allclose(lik.mean(out).numpy(), (1 - pi) * mu, rtol=1e-12)
    # Draws: the mixture's zero share and mean, with pi = 0.3 and mu = 3.
    out = _t(np.hstack([np.log([[3.0] * 3]), np.log([[0.3 / 0.7] * 3])])).expand(40000, 6)
    draws = lik.sample(out, torch.Generator().manual_seed(0)).numpy()
    assert np.all(draws == np.round(draws)) and draws.min() >= 0
    nb = stats.nbinom(theta, theta / (theta + 3.0))
    np.testing.assert_allclose((draws == 0).mean(axis=0), 0.3 + 0.7 * nb.pmf(0), atol=0.01)
    np.testing.assert_allclose(draws.mean(axis=0), 0.7 * 3.0, rtol=0.05)


def test_categorical_log_prob_one_hot_and_samples():
    lik = Categorical(2, n_categories=[3, 2])
    logits = RNG.normal(size=(40, 5))
    x = np.column_stack([RNG.integers(0, 3, 40), RNG.integers(0, 2, 40)]).astype(float)
    got = lik.log_prob(_t(x), _t(logits)).numpy()
    expected = TorchCategorical(logits=_t(logits[:, :3])).log_prob(_t(x[:, 0])) + (
        TorchCategorical(logits=_t(logits[:, 3:])).log_prob(_t(x[:, 1]))
    )
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-12)
    one_hot = lik.encoder_input(_t([[2.0, 0.0], [0.0, 1.0]])).numpy()
    np.testing.assert_array_equal(one_hot, [[0, 0, 1, 1, 0], [1, 0, 0, 0, 1]])
    out = _t([[0.0, 1.0, 2.0, 0.5, -0.5]]).expand(30000, 5)
    draws = lik.sample(out, torch.Generator().manual_seed(0)).numpy()
    freq = np.bincount(draws[:, 0].astype(int), minlength=3) / len(draws)
    np.testing.assert_allclose(freq, np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum(), atol=0.01)
    np.testing.assert_array_equal(lik.mean(out[:1]).numpy(), [[2.0, 0.0]])


@pytest.mark.parametrize(
    "values", [[1.0, 2.0, 3.0, 4.0], [-2.0, -1.0, 0.0, 1.0], [0.5, 2.0, 7.0, 11.0]]
)
def test_categories_that_are_any_numbers_are_read_at_their_positions(values):
    # A scale of 1 to 4, consecutive numbers from -2, and numbers with no pattern.
    lik = Categorical(2, n_categories=[4, 2], values=[values, [0.0, 1.0]])
    logits = RNG.normal(size=(40, 6))
    codes = np.column_stack([RNG.integers(0, 4, 40), RNG.integers(0, 2, 40)])
    x = np.column_stack([np.asarray(values)[codes[:, 0]], codes[:, 1]]).astype(float)
    expected = TorchCategorical(logits=_t(logits[:, :4])).log_prob(_t(codes[:, 0])) + (
        TorchCategorical(logits=_t(logits[:, 4:])).log_prob(_t(codes[:, 1]))
    )
    np.testing.assert_allclose(lik.log_prob(_t(x), _t(logits)).numpy(), expected, rtol=1e-12)
    one_hot = lik.encoder_input(_t(x[:3])).numpy()
    np.testing.assert_array_equal(one_hot[:, :4], np.eye(4)[codes[:3, 0]])
    top = np.argmax(logits[:, :4], axis=1)
    np.testing.assert_array_equal(lik.mean(_t(logits)).numpy()[:, 0], np.asarray(values)[top])


def test_mixed_is_the_sum_of_its_parts_on_their_columns():
    parts = [
        {"name": "poisson", "columns": [2]},
        {"name": "gaussian", "columns": [0, 3]},
        {"name": "categorical", "columns": [1], "n_categories": [3]},
    ]
    lik = Mixed(4, parts=parts).double()
    assert lik.n_outputs == 1 + 2 + 3 and lik.n_inputs == 1 + 2 + 3
    x = _t([[0.5, 2.0, 3.0, -1.0]])
    out = _t([[0.1, 0.2, -0.3, 1.0, 0.0, -1.0]])  # poisson | gaussian x2 | categorical x3
    expected = (
        Poisson(1).log_prob(x[:, [2]], out[:, 0:1])
        + lik.parts[1].log_prob(x[:, [0, 3]], out[:, 1:3])
        + Categorical(1, n_categories=[3]).log_prob(x[:, [1]], out[:, 3:6])
    )
    torch.testing.assert_close(lik.log_prob(x, out), expected)
    mean = lik.mean(out).detach().numpy()
    np.testing.assert_allclose(mean, [[0.2, 0.0, np.exp(0.1), -0.3]])
    draws = lik.sample(out.expand(500, -1), torch.Generator().manual_seed(0)).detach().numpy()
    assert set(np.unique(draws[:, 1])) <= {0.0, 1.0, 2.0}
    assert np.all(draws[:, 2] == np.round(draws[:, 2])) and draws[:, 2].min() >= 0
    variances = lik.variances().numpy()
    assert np.isnan(variances[[1, 2]]).all() and np.all(variances[[0, 3]] > 0)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_every_family_round_trips_through_its_config(name):
    X = RNG.integers(0, 2, size=(30, 3)).astype(float)
    if name in ("logit_normal", "lognormal"):
        X = np.clip(X, 0.1, 0.9)  # strictly between 0 and 1, and positive
    config, loc, scale = prepare_likelihood(X, name, "diag")
    lik = build_likelihood(3, config)
    assert lik.config == config and loc.shape == scale.shape == (3,)
    out = torch.zeros(4, lik.n_outputs, dtype=torch.float64)
    assert lik.log_prob(_t(X[:4]), out).shape == (4,)
    assert lik.sample(out, torch.Generator().manual_seed(0)).shape == (4, 3)
    assert lik.mean(out).shape == (4, 3)


def test_gaussian_scaling_is_per_feature_for_diag_and_global_for_spherical():
    X = RNG.normal(size=(200, 3)) * np.array([1.0, 10.0, 100.0]) + 5
    loc, scale = Gaussian.data_scaling(X, covariance_type="diag")
    np.testing.assert_allclose(loc, X.mean(axis=0))
    np.testing.assert_allclose(scale, X.std(axis=0))
    _, scale_s = Gaussian.data_scaling(X, covariance_type="spherical")
    assert np.all(scale_s == scale_s[0])
    np.testing.assert_allclose(scale_s[0] ** 2, np.mean(X.var(axis=0)))


def test_gaussian_scaling_handles_constant_and_huge_columns():
    X = np.column_stack([np.full(10, 3.0), np.linspace(0, 1e200, 10), np.linspace(0, 1, 10)])
    loc, scale = Gaussian.data_scaling(X, covariance_type="diag")
    assert np.all(np.isfinite(scale)) and np.all(scale > 0)
    assert loc[0] == 3.0
    np.testing.assert_allclose(scale[1], np.std(np.linspace(0, 1, 10)) * 1e200)
    assert scale[0] == scale.max()  # a constant column is measured against the largest
    _, scale_const = Gaussian.data_scaling(np.full((5, 2), 7.0), covariance_type="diag")
    np.testing.assert_array_equal(scale_const, [1.0, 1.0])


@pytest.mark.parametrize(
    "family, X, pattern",
    [
        (Bernoulli, [[0.0, 1.5]], r"bernoulli.*\[0, 1\]"),
        (ContinuousBernoulli, [[-0.1, 0.5]], r"continuous_bernoulli.*\[0, 1\]"),
        (Poisson, [[1.0, -2.0]], "poisson.*non-negative integer counts.*negative"),
        (Poisson, [[1.0, -2.0]], "counts as they are.*likelihood='gaussian'"),
        (NegativeBinomial, [[1.5, 2.0]], "negative_binomial.*non-integer"),
        (NegativeBinomial, [[1.5, 2.0]], "counts as they are.*likelihood='gaussian'"),
        (HurdleLogNormal, [[0.0, -1.0]], "hurdle_lognormal.*non-negative"),
    ],
)
def test_domain_checks_name_the_problem(family, X, pattern):
    with pytest.raises(ValueError, match=pattern):
        family.check_domain(np.asarray(X))


def test_categorical_rejects_codes_not_seen_in_fit():
    lik = Categorical(2, n_categories=[3, 2])
    lik.validate(np.array([[2.0, 1.0]]))
    with pytest.raises(ValueError, match="Category 2 in categorical column 1 was not seen in fit"):
        lik.validate(np.array([[0.0, 2.0]]))


def test_multinomial_is_the_total_times_the_counts_given_the_total():
    lik = build_likelihood(4, {"name": "multinomial", "total_mean": 20.0, "total_theta": 3.0})
    logits = RNG.normal(size=(30, 4))
    x = RNG.multinomial(20, [0.1, 0.2, 0.3, 0.4], size=30).astype(float)
    x[:3] = 0  # empty rows have probability p(n = 0)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    n = x.sum(axis=1)
    expected = stats.nbinom(3.0, 3.0 / 23.0).logpmf(n) + np.array(
        [stats.multinomial(k, q).logpmf(row) for k, q, row in zip(n, p, x, strict=True)]
    )
    got = lik.double().log_prob(_t(x), _t(logits)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(lik.mean(_t(logits)).numpy(), 20.0 * p, rtol=1e-12)
    draws = lik.sample(_t(logits[:1]).expand(40000, 4), torch.Generator().manual_seed(0))
    draws = draws.numpy()
    assert np.all(draws == np.round(draws)) and draws.min() >= 0
    totals = draws.sum(axis=1)
    np.testing.assert_allclose([totals.mean(), totals.var()], [20.0, 20.0 + 400 / 3], rtol=0.05)
    np.testing.assert_allclose(draws.sum(axis=0) / totals.sum(), p[0], atol=0.005)


def test_multinomial_learns_the_totals_and_refuses_missing_entries():
    rng = np.random.default_rng(0)
    X = rng.multinomial(15, [0.5, 0.3, 0.2], size=500).astype(float)
    learned = LIKELIHOODS["multinomial"].learn(X)
    assert learned["total_mean"] == 15.0
    assert learned["total_theta"] == float("inf")  # totals that vary less than a Poisson's
    totals = rng.negative_binomial(4.0, 0.2, size=5000)  # mean 16, variance 80: theta 4
    learned = LIKELIHOODS["multinomial"].learn(np.column_stack([totals, 0 * totals]))
    assert learned["total_theta"] == pytest.approx(4.0, rel=0.1)
    X[0, 1] = np.nan
    with pytest.raises(ValueError, match="missing entry leaves unknown"):
        LIKELIHOODS["multinomial"].check_domain(X)
