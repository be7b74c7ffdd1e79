import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_torch_global_rng():
    # skvae never reads torch's global RNG; seeding it keeps helper code in tests repeatable.
    torch.manual_seed(0)
