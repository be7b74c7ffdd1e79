"""Tests for skvae.datasets.

Expected values come from computations independent of the code under test:
scikit-learn's FactorAnalysis and PCA densities, closed-form Gaussian moments,
Monte Carlo integration over the latent, and numerical integration over x.
"""

import numpy as np
import pytest
from scipy.integrate import trapezoid
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.decomposition import PCA, FactorAnalysis

from skvae.datasets import (
    LinearGaussianModel,
    NonlinearProcessModel,
    NonlinearSurfaceModel,
    linear_gaussian_log_likelihood,
    make_linear_gaussian,
    make_nonlinear_process,
    make_nonlinear_surface,
    nonlinear_process_log_likelihood,
    nonlinear_surface_log_likelihood,
)

# --------------------------------------------------------------------------
# Shapes and reproducibility
# --------------------------------------------------------------------------


@pytest.mark.parametrize("noise", ["diag", "spherical"])
def test_linear_shapes_and_noise(noise):
    X, model = make_linear_gaussian(
        50, n_features=7, n_components=3, noise=noise, noise_scale=0.4, random_state=0
    )
    assert isinstance(model, LinearGaussianModel)
    assert X.shape == (50, 7)
    assert model.components.shape == (3, 7)
    assert model.mean.shape == (7,)
    assert model.noise_variance.shape == (7,)
    assert model.covariance.shape == (7, 7)
    if noise == "spherical":
        np.testing.assert_array_equal(model.noise_variance, np.full(7, 0.4**2))
    else:
        assert np.all(model.noise_variance >= 0.5 * 0.4**2)
        assert np.all(model.noise_variance <= 2.0 * 0.4**2)
        assert np.ptp(model.noise_variance) > 0
    assert linear_gaussian_log_likelihood(X, model).shape == (50,)


def test_nonlinear_shapes():
    X, model = make_nonlinear_process(40, n_features=4, noise_std=0.2, random_state=0)
    assert isinstance(model, NonlinearProcessModel)
    assert X.shape == (40, 4)
    assert model.noise_std == 0.2
    assert model.curve(np.linspace(-1, 1, 9)).shape == (9, 4)
    assert model.curve(0.5).shape == (1, 4)
    assert nonlinear_process_log_likelihood(X, model).shape == (40,)


@pytest.mark.parametrize(
    "make, kwargs",
    [
        (make_linear_gaussian, {"n_features": 5, "n_components": 2}),
        (make_nonlinear_process, {"n_features": 3}),
    ],
)
def test_reproducible(make, kwargs):
    X1, model1 = make(30, random_state=3, **kwargs)
    X2, model2 = make(30, random_state=3, **kwargs)
    X3, _ = make(30, random_state=np.random.RandomState(3), **kwargs)
    X4, _ = make(30, random_state=4, **kwargs)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(X1, X3)
    np.testing.assert_array_equal(model1.score_samples(X1), model2.score_samples(X1))
    assert not np.allclose(X1, X4)


def test_linear_parameters_depend_on_random_state():
    _, model1 = make_linear_gaussian(5, n_features=4, random_state=0)
    _, model2 = make_linear_gaussian(5, n_features=4, random_state=1)
    assert not np.allclose(model1.components, model2.components)
    assert not np.allclose(model1.mean, model2.mean)


def test_nonlinear_curve_is_fixed_and_matches_documented_formula():
    _, model1 = make_nonlinear_process(5, n_features=4, random_state=0)
    _, model2 = make_nonlinear_process(5, n_features=4, noise_std=0.7, random_state=1)
    _, model6 = make_nonlinear_process(5, n_features=6, random_state=2)
    z = np.linspace(-3, 3, 11)
    # Same curve whatever random_state and noise_std; more features extend it.
    np.testing.assert_array_equal(model1.curve(z), model2.curve(z))
    np.testing.assert_array_equal(model1.curve(z), model6.curve(z)[:, :4])
    # f_j(z) = a_j sin(w_j z + phi_j) + b_j z, written out feature by feature.
    for j in range(4):
        expected = (
            model1.amplitude[j] * np.sin(model1.frequency[j] * z + model1.phase[j])
            + model1.slope[j] * z
        )
        np.testing.assert_allclose(model1.curve(z)[:, j], expected, rtol=1e-12, atol=1e-12)
    # The curve is genuinely nonlinear: not explained by a line in z.
    dense = np.linspace(-2, 2, 101)
    design = np.column_stack([np.ones_like(dense), dense])
    _, residuals, *_ = np.linalg.lstsq(design, model1.curve(dense), rcond=None)
    assert np.all(residuals > 1.0)


def test_score_samples_methods_match_functions():
    X, model = make_linear_gaussian(20, n_features=3, n_components=1, random_state=0)
    np.testing.assert_array_equal(model.score_samples(X), linear_gaussian_log_likelihood(X, model))
    X, model = make_nonlinear_process(20, n_features=2, random_state=0)
    np.testing.assert_array_equal(
        model.score_samples(X, n_grid=3001),
        nonlinear_process_log_likelihood(X, model, n_grid=3001),
    )
    X, model = make_nonlinear_surface(5, n_features=3, noise_std=0.3, random_state=0)
    np.testing.assert_array_equal(
        model.score_samples(X, n_grid=201),
        nonlinear_surface_log_likelihood(X, model, n_grid=201),
    )


# Recorded samples and exact log-likelihoods: how they are computed may change, not what they are.
RECORDED = {
    "process": (
        [[0.41630172949738137, 0.7505634033447666], [-0.9607463842279067, 0.9340135703044128]],
        [-4.653216645077881, -0.8514215900876638],
    ),
    "surface": (
        [
            [0.5163964301025066, -0.157018485317916, -0.4520323867267993],
            [0.4505707894426276, -0.3219426502489165, -2.098725100375641],
        ],
        [-2.5529478160019803, -4.504539458576793],
    ),
    "linear": (
        [[2.9384486669912686, 0.3711176666724627, 0.04448428803764404]],
        [-4.392748261712501],
    ),
}


@pytest.mark.parametrize("process", ["process", "surface", "linear"])
def test_samples_and_log_likelihoods_are_the_recorded_ones(process):
    make, log_likelihood, kwargs = {
        "process": (make_nonlinear_process, nonlinear_process_log_likelihood, {"noise_std": 0.2}),
        "surface": (make_nonlinear_surface, nonlinear_surface_log_likelihood, {"noise_std": 0.3}),
        "linear": (make_linear_gaussian, linear_gaussian_log_likelihood, {"n_components": 2}),
    }[process]
    X_recorded, log_p_recorded = RECORDED[process]
    n_features = len(X_recorded[0])
    X, model = make(3, n_features=n_features, random_state=0, **kwargs)
    X = X[: len(X_recorded)]
    np.testing.assert_allclose(X, X_recorded, rtol=1e-12)
    grid = {"n_grid": 301} if process == "surface" else {}
    np.testing.assert_allclose(log_likelihood(X, model, **grid), log_p_recorded, rtol=1e-10)


# --------------------------------------------------------------------------
# Linear-Gaussian process
# --------------------------------------------------------------------------


def test_linear_log_likelihood_matches_factor_analysis():
    X, model = make_linear_gaussian(
        300, n_features=8, n_components=3, noise="diag", random_state=0
    )
    # Evaluate scikit-learn's FactorAnalysis density on the true parameters.
    fa = FactorAnalysis(n_components=3)
    fa.components_ = model.components
    fa.noise_variance_ = model.noise_variance
    fa.mean_ = model.mean
    fa.n_features_in_ = 8
    np.testing.assert_allclose(
        linear_gaussian_log_likelihood(X, model), fa.score_samples(X), rtol=1e-10, atol=1e-10
    )
    # Points far from the data are handled too.
    X_far = X + 10.0
    np.testing.assert_allclose(model.score_samples(X_far), fa.score_samples(X_far), rtol=1e-10)


def test_linear_log_likelihood_matches_probabilistic_pca():
    X, model = make_linear_gaussian(
        300, n_features=6, n_components=2, noise="spherical", noise_scale=0.3, random_state=1
    )
    # PCA stores W^T W as orthonormal components and explained variances.
    _, singular_values, vt = np.linalg.svd(model.components, full_matrices=False)
    sigma2 = 0.3**2
    pca = PCA(n_components=2)
    pca.components_ = vt
    pca.explained_variance_ = singular_values**2 + sigma2
    pca.noise_variance_ = sigma2
    pca.mean_ = model.mean
    pca.n_components_ = 2
    pca.n_features_in_ = 6
    np.testing.assert_allclose(
        linear_gaussian_log_likelihood(X, model), pca.score_samples(X), rtol=1e-10, atol=1e-10
    )


def test_linear_sample_moments_and_mean_log_likelihood():
    n_samples = 200_000
    X, model = make_linear_gaussian(
        n_samples, n_features=6, n_components=2, noise_scale=0.5, random_state=0
    )
    W = model.components
    cov = W.T @ W + np.diag(model.noise_variance)
    diag = np.diag(cov)
    # Standard errors of the sample mean and covariance of a Gaussian.
    se_mean = np.sqrt(diag / n_samples)
    se_cov = np.sqrt((np.outer(diag, diag) + cov**2) / n_samples)
    assert np.all(np.abs(X.mean(axis=0) - model.mean) < 5 * se_mean)
    assert np.all(np.abs(np.cov(X, rowvar=False) - cov) < 5 * se_cov)
    # The average log-likelihood is minus the Gaussian entropy.
    _, logdet = np.linalg.slogdet(cov)
    neg_entropy = -0.5 * (6 * np.log(2 * np.pi * np.e) + logdet)
    ll = linear_gaussian_log_likelihood(X, model)
    assert abs(ll.mean() - neg_entropy) < 5 * ll.std() / np.sqrt(n_samples)


# --------------------------------------------------------------------------
# Nonlinear process
# --------------------------------------------------------------------------


def test_nonlinear_sample_moments_match_closed_form():
    # With z ~ N(0, 1): E[sin(wz + phi)] = sin(phi) exp(-w^2 / 2),
    # E[sin^2(wz + phi)] = (1 - cos(2 phi) exp(-2 w^2)) / 2 and, by Stein's
    # lemma, E[z sin(wz + phi)] = w cos(phi) exp(-w^2 / 2).
    n_samples = 200_000
    noise_std = 0.2
    X, model = make_nonlinear_process(n_samples, n_features=4, noise_std=noise_std, random_state=0)
    a, w, phi, b = model.amplitude, model.frequency, model.phase, model.slope
    mean_sin = np.sin(phi) * np.exp(-(w**2) / 2)
    mean_sin2 = (1 - np.cos(2 * phi) * np.exp(-2 * w**2)) / 2
    mean_z_sin = w * np.cos(phi) * np.exp(-(w**2) / 2)
    mean = a * mean_sin
    var = a**2 * (mean_sin2 - mean_sin**2) + 2 * a * b * mean_z_sin + b**2 + noise_std**2
    se_mean = np.sqrt(var / n_samples)
    se_var = var * np.sqrt(3.0 / n_samples)  # generous: non-Gaussian marginals
    assert np.all(np.abs(X.mean(axis=0) - mean) < 5 * se_mean)
    assert np.all(np.abs(X.var(axis=0) - var) < 5 * se_var)


@pytest.mark.parametrize("noise_std", [0.3, 0.5])
def test_nonlinear_log_likelihood_matches_monte_carlo(noise_std):
    n_features = 3
    X, model = make_nonlinear_process(
        20, n_features=n_features, noise_std=noise_std, random_state=0
    )
    # log p(x) = log E_z[N(x; f(z), s^2 I)], estimated with prior samples.
    n_mc = 200_000
    z = np.random.default_rng(12345).standard_normal(n_mc)
    points = model.curve(z)
    log_norm = -0.5 * n_features * np.log(2 * np.pi * noise_std**2)
    mc = np.empty(len(X))
    for i, x in enumerate(X):
        log_lik = log_norm - 0.5 * np.sum((x - points) ** 2, axis=1) / noise_std**2
        mc[i] = logsumexp(log_lik) - np.log(n_mc)
    quad = nonlinear_process_log_likelihood(X, model)
    np.testing.assert_allclose(quad, mc, rtol=0, atol=0.03)


def test_nonlinear_process_is_far_from_gaussian():
    # A Gaussian with the same mean and covariance fits samples of the process
    # markedly worse than the exact density: the data lie near a curve.
    train, _ = make_nonlinear_process(20_000, n_features=5, noise_std=0.1, random_state=1)
    X, model = make_nonlinear_process(2_000, n_features=5, noise_std=0.1, random_state=0)
    gauss = multivariate_normal(train.mean(axis=0), np.cov(train, rowvar=False)).logpdf(X)
    assert nonlinear_process_log_likelihood(X, model).mean() > gauss.mean() + 1.0


@pytest.mark.parametrize("noise_std, n_features", [(0.05, 5), (0.1, 2), (0.05, 10)])
def test_nonlinear_default_grid_is_converged(noise_std, n_features):
    X, model = make_nonlinear_process(
        300, n_features=n_features, noise_std=noise_std, random_state=0
    )
    default = nonlinear_process_log_likelihood(X, model)
    finer = nonlinear_process_log_likelihood(X, model, n_grid=100_001)
    assert np.max(np.abs(default - finer)) < 1e-6
    # Same thing with a grid twice as fine as a given one.
    grid = nonlinear_process_log_likelihood(X, model, n_grid=6001)
    twice = nonlinear_process_log_likelihood(X, model, n_grid=12001)
    assert np.max(np.abs(grid - twice)) < 1e-3
    # The comparison can fail: a grid coarser than the peaks is visibly off.
    coarse = nonlinear_process_log_likelihood(X, model, n_grid=101)
    assert np.max(np.abs(coarse - finer)) > 1e-2


def test_nonlinear_density_integrates_to_one_in_1d():
    noise_std = 0.05
    _, model = make_nonlinear_process(1, n_features=1, noise_std=noise_std, random_state=0)
    reach = model.curve(np.linspace(-7, 7, 2001))
    x = np.linspace(reach.min() - 10 * noise_std, reach.max() + 10 * noise_std, 4001)
    density = np.exp(nonlinear_process_log_likelihood(x[:, None], model))
    # The trapezoidal rule on a grid much finer than noise_std is accurate to
    # ~1e-14 here; 1e-6 also catches a lost prior mass of a few 1e-5.
    assert abs(trapezoid(density, x) - 1.0) < 1e-6


def test_nonlinear_density_integrates_to_one_in_2d():
    noise_std = 0.3
    _, model = make_nonlinear_process(1, n_features=2, noise_std=noise_std, random_state=0)
    reach = model.curve(np.linspace(-6, 6, 2001))
    axes = [
        np.arange(reach[:, j].min() - 8 * noise_std, reach[:, j].max() + 8 * noise_std, 0.05)
        for j in range(2)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    density = np.exp(nonlinear_process_log_likelihood(grid, model))
    density = density.reshape(len(axes[0]), len(axes[1]))
    total = trapezoid(trapezoid(density, axes[1], axis=1), axes[0])
    assert abs(total - 1.0) < 1e-6


def test_nonlinear_log_likelihood_is_finite_far_from_the_curve():
    X, model = make_nonlinear_process(5, n_features=3, noise_std=0.05, random_state=0)
    log_p = nonlinear_process_log_likelihood(X + 30.0, model)
    assert np.all(np.isfinite(log_p))
    assert np.all(log_p < -1e4)


# --------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (make_linear_gaussian, {"n_samples": 0}, "n_samples must be >= 1"),
        (make_linear_gaussian, {"n_samples": 2.5}, "n_samples must be an integer"),
        (make_linear_gaussian, {"n_features": 0}, "n_features must be >= 1"),
        (make_linear_gaussian, {"n_components": 0}, "n_components must be >= 1"),
        (
            make_linear_gaussian,
            {"n_features": 3, "n_components": 4},
            "n_components must be <= n_features",
        ),
        (make_linear_gaussian, {"noise": "full"}, "noise must be 'diag' or 'spherical'"),
        (make_linear_gaussian, {"noise_scale": 0.0}, "noise_scale must be a finite number > 0"),
        (make_linear_gaussian, {"noise_scale": np.nan}, "noise_scale must be a finite number"),
        (make_nonlinear_process, {"n_samples": 0}, "n_samples must be >= 1"),
        (make_nonlinear_process, {"n_features": 0}, "n_features must be >= 1"),
        (make_nonlinear_process, {"noise_std": 0.0}, "noise_std must be a finite number > 0"),
        (make_nonlinear_process, {"noise_std": -1.0}, "noise_std must be a finite number > 0"),
        (make_nonlinear_process, {"noise_std": "0.1"}, "noise_std must be a real number"),
        (make_nonlinear_surface, {"n_features": 1}, "n_features must be >= 2"),
        (make_nonlinear_surface, {"noise_std": 0.0}, "noise_std must be a finite number > 0"),
    ],
)
def test_bad_arguments_raise(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_bad_log_likelihood_inputs_raise():
    X, model = make_nonlinear_process(10, n_features=3, random_state=0)
    with pytest.raises(ValueError, match="X has 2 features, but the model has 3"):
        nonlinear_process_log_likelihood(X[:, :2], model)
    with pytest.raises(ValueError, match="n_grid must be >= 3"):
        nonlinear_process_log_likelihood(X, model, n_grid=2)
    with pytest.raises(ValueError, match="X must be a 2D array"):
        nonlinear_process_log_likelihood(X[0], model)
    X, model = make_linear_gaussian(10, n_features=3, n_components=1, random_state=0)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        linear_gaussian_log_likelihood(X, model)


# ------------------------------------------------------------------ 2-D surface


def test_surface_linear_case_matches_gaussian_closed_form():
    # With no sine part, x = B z + noise: Gaussian with covariance B B^T + s^2 I.
    rng = np.random.default_rng(0)
    slope = rng.normal(size=(4, 2))
    model = NonlinearSurfaceModel(
        amplitude=np.zeros(4),
        frequency=np.ones((4, 2)),
        phase=np.zeros(4),
        slope=slope,
        noise_std=0.4,
    )
    X = model.sample(30, random_state=1)
    reference = multivariate_normal(np.zeros(4), slope @ slope.T + 0.16 * np.eye(4)).logpdf(X)
    np.testing.assert_allclose(nonlinear_surface_log_likelihood(X, model), reference, atol=1e-8)


def test_surface_log_likelihood_matches_monte_carlo():
    noise_std = 0.4
    X, model = make_nonlinear_surface(10, n_features=3, noise_std=noise_std, random_state=0)
    z = np.random.default_rng(7).standard_normal((400_000, 2))
    points = model.surface(z)
    log_norm = -0.5 * 3 * np.log(2 * np.pi * noise_std**2)
    mc = [
        logsumexp(log_norm - 0.5 * np.sum((x - points) ** 2, axis=1) / noise_std**2)
        - np.log(len(z))
        for x in X
    ]
    np.testing.assert_allclose(nonlinear_surface_log_likelihood(X, model), mc, atol=0.03)


def test_surface_default_grid_is_converged_and_coarse_grids_are_not():
    X, model = make_nonlinear_surface(20, n_features=3, noise_std=0.2, random_state=0)
    default = nonlinear_surface_log_likelihood(X, model)
    finer = nonlinear_surface_log_likelihood(X, model, n_grid=1601)
    assert np.max(np.abs(default - finer)) < 1e-6
    coarse = nonlinear_surface_log_likelihood(X, model, n_grid=21)
    assert np.max(np.abs(coarse - finer)) > 1e-2


def test_surface_is_fixed_and_far_from_gaussian():
    train, model = make_nonlinear_surface(20_000, n_features=5, noise_std=0.2, random_state=1)
    _, again = make_nonlinear_surface(5, n_features=6, noise_std=0.3, random_state=2)
    np.testing.assert_array_equal(model.frequency, again.frequency[:5])
    X = model.sample(200, random_state=0)
    gauss = multivariate_normal(train.mean(axis=0), np.cov(train, rowvar=False)).logpdf(X)
    assert nonlinear_surface_log_likelihood(X, model).mean() > gauss.mean() + 1.0
