"""The training step's hand-derived gradients against autograd's, family by family and whole.

Autograd differentiating the model's own ``loss`` (and each family's ``log_prob``) is the
independent reference: every hand-written derivative must agree with it in float64.
"""

import copy

import numpy as np
import pytest
import torch

from skvae import POSTERIORS, VAEModule
from skvae._analytic_step import AnalyticStep
from skvae._likelihoods import Gaussian, build_likelihood
from skvae._optim import make_optimizer
from skvae._posteriors import DiagonalGaussian
from skvae._sparse_layer import SparseInputs

N = 9


def _codes(rng, sizes):
    return np.column_stack([rng.integers(0, k, N) for k in sizes]).astype(float)


# What a log- or logit-normal family learns: the location and spread of each column's y.
_TRANSFORMED = {"transformed_loc": [0.1, -1.0, 2.0], "transformed_scale": [1, 2, 0.5]}


def _data(rng, family):
    """(likelihood config, x) of three columns for ``family``."""
    counts = rng.poisson(3.0, (N, 3)).astype(float)
    return {
        "gaussian": ({"name": "gaussian", "scale": [1.0, 2.0, 0.5]}, rng.normal(size=(N, 3))),
        "student_t": ({"name": "student_t"}, 3 * rng.standard_t(2.0, size=(N, 3))),
        "spherical": (
            {"name": "gaussian", "covariance_type": "spherical"},
            rng.normal(size=(N, 3)),
        ),
        "bernoulli": ({"name": "bernoulli"}, (rng.uniform(size=(N, 3)) > 0.5).astype(float)),
        "continuous_bernoulli": ({"name": "continuous_bernoulli"}, rng.uniform(size=(N, 3))),
        "poisson": ({"name": "poisson"}, counts),
        "negative_binomial": ({"name": "negative_binomial"}, counts),
        "zero_inflated_negative_binomial": ({"name": "zero_inflated_negative_binomial"}, counts),
        "multinomial": (
            {"name": "multinomial", "total_mean": 9.0, "total_theta": 3.0},
            counts,
        ),
        "categorical": (
            {"name": "categorical", "n_categories": [3, 2, 4]},
            _codes(rng, [3, 2, 4]),
        ),
        "hurdle_lognormal": (
            {"name": "hurdle_lognormal", "log_loc": [0.1, 0.2, 0.3], "log_scale": [1, 2, 0.5]},
            np.where(rng.uniform(size=(N, 3)) < 0.3, 0.0, rng.uniform(0, 5, (N, 3))),
        ),
        "logit_normal": (
            {"name": "logit_normal", **_TRANSFORMED},
            rng.uniform(0.01, 0.99, (N, 3)),
        ),
        "lognormal": ({"name": "lognormal", **_TRANSFORMED}, rng.lognormal(0, 2, (N, 3))),
        "mixed": (
            {
                "name": "mixed",
                "parts": [
                    {"name": "gaussian", "columns": [0]},
                    {"name": "categorical", "columns": [1, 2], "n_categories": [3, 2]},
                ],
            },
            np.column_stack([rng.normal(size=N), _codes(rng, [3, 2])]),
        ),
    }[family]


FAMILIES = [
    "gaussian",
    "spherical",
    "student_t",
    "bernoulli",
    "continuous_bernoulli",
    "poisson",
    "negative_binomial",
    "zero_inflated_negative_binomial",
    "multinomial",
    "categorical",
    "hurdle_lognormal",
    "logit_normal",
    "lognormal",
    "mixed",
]


def _grads(module):
    return {n: None if p.grad is None else p.grad.clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("masked", [False, True], ids=["observed", "missing"])
@pytest.mark.parametrize("per_row", [False, True], ids=["mean", "row_weights"])
def test_each_family_log_prob_grad_is_autograds(family, masked, per_row):
    if masked and family == "multinomial":
        pytest.skip("the multinomial takes no missing entries")
    rng = np.random.default_rng(0)
    config, x = _data(rng, family)
    likelihood = build_likelihood(3, config).double()
    with torch.no_grad():
        for p in likelihood.parameters():
            p.normal_(generator=torch.Generator().manual_seed(1))
    x = torch.as_tensor(x)
    out = torch.as_tensor(rng.normal(scale=2.0, size=(N, likelihood.n_outputs)))
    out[0, 0] = 1e-3  # the continuous Bernoulli's Taylor branch
    mask = torch.as_tensor((rng.uniform(size=(N, 3)) > 0.3).astype(float)) if masked else None
    if mask is not None:
        x = x * mask
    scale = torch.as_tensor(rng.uniform(size=(N, 1))) if per_row else 0.37
    log_p, grad_out = likelihood.log_prob_grad(x, out, mask, scale)
    by_hand = _grads(likelihood)
    for p in likelihood.parameters():
        p.grad = None
    ref_log_p, ref_grad = likelihood._autograd_log_prob_grad(x, out, mask, scale)
    torch.testing.assert_close(log_p, ref_log_p, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_out, ref_grad, rtol=1e-10, atol=1e-12)
    for name, grad in _grads(likelihood).items():
        torch.testing.assert_close(by_hand[name], grad, rtol=1e-10, atol=1e-12, msg=name)


def test_a_subclass_that_changes_log_prob_is_differentiated_by_autograd():
    class Heavier(Gaussian):
        name = "heavier"

        def log_prob(self, x, out, mask=None):
            return 2.0 * super().log_prob(x, out, mask)

    likelihood = Heavier(3).double()
    x, out = torch.randn(N, 3, dtype=torch.float64), torch.randn(N, 3, dtype=torch.float64)
    _, grad = likelihood.log_prob_grad(x, out, None, 1.0)
    # Twice the Gaussian's (x - out) / var: the inherited derivative by hand would give it once.
    torch.testing.assert_close(grad, 2.0 * (x - out) / likelihood.variance)


@pytest.mark.parametrize("kl_scale", [0.3, "per_row"])
def test_diagonal_gaussian_params_grad_is_autograds(kl_scale):
    gen = torch.Generator().manual_seed(0)
    params = torch.randn(N, 6, generator=gen, dtype=torch.float64)
    eps, grad_z = (torch.randn(N, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    if kl_scale == "per_row":
        kl_scale = torch.rand(N, 1, generator=gen, dtype=torch.float64)
    leaf = params.clone().requires_grad_()
    q = DiagonalGaussian(leaf)
    total = (q.rsample(eps) * grad_z).sum() + (q.kl_to_prior().unsqueeze(-1) * kl_scale).sum()
    (expected,) = torch.autograd.grad(total, leaf)
    got = DiagonalGaussian(params).params_grad(eps, grad_z, kl_scale)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


class _SharedScale(DiagonalGaussian):
    name = "shared_scale_test"

    def __init__(self, params):
        super().__init__(params)
        self.log_var = self.log_var.mean(-1, keepdim=True).expand_as(self.loc)


def _module(family="gaussian", *, hidden=(16, 8), activation="relu", missing=False,
            covariates=None, posterior="diagonal_gaussian", n_features=3):  # fmt: skip
    rng = np.random.default_rng(0)
    config, x = _data(rng, family)
    torch.manual_seed(0)
    module = VAEModule(
        n_features,
        2,
        hidden,
        activation,
        build_likelihood(n_features, config),
        missing=missing,
        posterior=posterior,
        covariates=covariates,
    ).double()
    with torch.no_grad():
        for p in module.likelihood.parameters():
            p.normal_(generator=torch.Generator().manual_seed(1))
    return module, torch.as_tensor(x)


def _compare(module, batch, eps, kl_weight=0.7, row_weights=None):
    """The step's gradients and loss against autograd on a copy of the module."""
    reference = copy.deepcopy(module)
    make_optimizer(module, (module.encoder, module.decoder), 1e-3)  # the flat buffers
    step = AnalyticStep.build(module, 1, None)
    assert step is not None
    with torch.no_grad():
        loss = step.backward(step.forward(batch, eps), kl_weight, row_weights)
    output = reference.loss({k: v for k, v in batch.items() if k != "sparse"}, eps, kl_weight)
    if row_weights is None:
        expected = output.loss
    else:
        expected = -((output.reconstruction - kl_weight * output.kl) * row_weights).sum()
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-12, atol=1e-12)
    by_hand = _grads(module)
    for name, grad in _grads(reference).items():
        torch.testing.assert_close(by_hand[name], grad, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_step_gradients_are_autograds_for_every_family(family):
    module, x = _module(family)
    eps = torch.randn(N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    _compare(module, {"x": x}, eps)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("hidden", [(), (5,), (7, 4)], ids=["affine", "one", "two"])
def test_the_step_gradients_are_autograds_for_every_network(activation, hidden):
    module, x = _module(hidden=hidden, activation=activation)
    eps = torch.randn(N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    _compare(module, {"x": x}, eps)


def test_the_step_gradients_with_missing_values_covariates_and_row_weights():
    module, x = _module("mixed", missing=True, covariates={"batch": 2})
    gen = torch.Generator().manual_seed(2)
    x[1, 0] = x[4, 2] = float("nan")
    batch = {"x": x, "batch": torch.eye(2, dtype=torch.float64)[torch.arange(N) % 2]}
    eps = torch.randn(N, 2, dtype=torch.float64, generator=gen)
    weights = torch.rand(N, dtype=torch.float64, generator=gen)
    weights[[0, 3]] = 0.0  # rows a trimmed objective leaves out
    _compare(module, batch, eps)
    _compare(module, batch, eps, row_weights=weights)


def test_the_step_gradients_of_a_registered_posterior_are_autograds():
    POSTERIORS[_SharedScale.name] = _SharedScale
    try:
        module, x = _module(posterior=_SharedScale.name)
        eps = torch.randn(N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        _compare(module, {"x": x}, eps)
    finally:
        del POSTERIORS[_SharedScale.name]


@pytest.mark.parametrize("with_covariates", [False, True])
def test_the_step_gradients_through_the_sparse_first_layer(with_covariates):
    rng = np.random.default_rng(0)
    x = torch.as_tensor((rng.uniform(size=(40, 80)) < 0.1).astype(float))
    covariates = {"batch": 2} if with_covariates else None
    torch.manual_seed(0)
    module = VAEModule(
        80, 2, (16,), "relu", build_likelihood(80, {"name": "bernoulli"}), covariates=covariates
    ).double()
    sparse = SparseInputs.build(module.likelihood.encoder_input, x, 80)
    assert sparse is not None
    sparse.width = module.encoder[0].in_features
    batch = {"x": x, "sparse": sparse.batch(np.arange(40), 0, 40, torch.device("cpu"))}
    if with_covariates:
        batch["batch"] = torch.eye(2, dtype=torch.float64)[torch.arange(40) % 2]
    batch["sparse"] = batch["sparse"]._replace(
        values=None, column_values=None
    )  # binary inputs: every value is 1
    eps = torch.randn(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    _compare(module, batch, eps)


def test_objectives_the_step_does_not_cover_train_through_autograd():
    module, _ = _module()
    make_optimizer(module, (module.encoder, module.decoder), 1e-3)
    assert AnalyticStep.build(module, 1, None) is not None
    assert AnalyticStep.build(module, 5, None) is None  # the importance-weighted bound
    assert AnalyticStep.build(module, 1, torch.bfloat16) is None
    fresh, _ = _module()  # no flat gradient buffers: nowhere to write
    assert AnalyticStep.build(fresh, 1, None) is None


@pytest.mark.parametrize(
    "family", ["poisson", "negative_binomial", "zero_inflated_negative_binomial"]
)
@pytest.mark.parametrize("kind", ["latent", "observed"])
@pytest.mark.parametrize("levels", [False, True], ids=["one_prior", "a_prior_per_level"])
def test_the_step_gradients_with_a_library_size_are_autograds(family, kind, levels):
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.poisson(rng.uniform(1, 20, (N, 1)), (N, 4)).astype(float))
    library = {"kind": kind, "loc": 2.0, "scale": 0.5}
    covariates, batch = None, {"x": x}
    if levels:
        library["levels"] = {"loc": [2.0, 0.3, -0.2], "var": [0.25, 0.1, 0.02]}
        covariates = {"categorical": 2}
        batch["categorical"] = torch.eye(2, dtype=torch.float64)[torch.arange(N) % 2]
    torch.manual_seed(0)
    module = VAEModule(
        4, 2, (8,), "tanh", build_likelihood(4, {"name": family}),
        covariates=covariates, library=library,
    ).double()  # fmt: skip
    width = module.n_latent  # the library is one more latent variable when latent
    eps = torch.randn(N, width, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    _compare(module, batch, eps)
