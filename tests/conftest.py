import numpy as np
import pytest
import torch
from scipy import stats

from skvae._sparse_layer import SparseInputs


@pytest.fixture(autouse=True)
def _seed_torch_global_rng():
    # skvae never reads torch's global RNG; seeding it keeps helper code in tests repeatable.
    torch.manual_seed(0)


@pytest.fixture
def sparse_builds(monkeypatch):
    """The list of what each SparseInputs.build returns during the test (None: dense)."""
    built = []
    build = SparseInputs.build.__func__

    def spy(cls, *args, **kwargs):
        built.append(build(cls, *args, **kwargs))
        return built[-1]

    monkeypatch.setattr(SparseInputs, "build", classmethod(spy))
    return built


@pytest.fixture
def linear_mixture_log_joint():
    """log pi_c + log p(x | c) of each component c of a linear Gaussian VAE with a mixture
    prior, exactly: x | c ~ N(W m_c + b, W S_c W^T + diag(noise)), in the model's units."""

    def log_joint(module, X):
        weight = module.decoder[0].weight.detach().double().numpy()
        bias = module.decoder[0].bias.detach().double().numpy()
        noise = module.likelihood.variance.detach().double().numpy()
        prior = module.prior
        pis = torch.softmax(prior.logits.detach().double(), -1).numpy()
        means = prior.means.detach().double().numpy()
        variances = prior.log_vars.detach().double().exp().numpy()
        standard = (X - module.likelihood.loc) / module.likelihood.scale
        return np.stack(
            [
                np.log(pi)
                + stats.multivariate_normal(
                    weight @ m + bias, weight @ np.diag(v) @ weight.T + np.diag(noise)
                ).logpdf(standard)
                for pi, m, v in zip(pis, means, variances, strict=True)
            ],
            axis=1,
        )

    return log_joint
