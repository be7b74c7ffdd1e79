import pytest
import torch

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
