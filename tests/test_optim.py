"""The flat-buffer AdamW and the weight average, against torch.optim and by-hand averages."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import skvae._optim as optim
from skvae import VAEEstimator, VAEModule
from skvae._likelihoods import prepare_likelihood
from skvae._optim import AdamW, WeightAverage, make_optimizer


def _small_module():
    X = load_digits().data[:50]
    config, _, _ = prepare_likelihood(X, "gaussian", "diag")
    torch.manual_seed(0)
    spec = {"n_features": 64, "n_components": 2, "hidden_layer_sizes": (8,)}
    return VAEModule.from_spec({**spec, "activation": "relu", "likelihood": config})


def _optimizer(module, lr, weight_decay=0.0):
    return make_optimizer(module, (module.encoder, module.decoder), lr, weight_decay)


def _batch():
    x = torch.as_tensor(load_digits().data[:32], dtype=torch.float32) / 16
    eps = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    return x, eps


def _train(module, optimizer, n_steps=6, change_lr_at=None):
    x, eps = _batch()
    for step in range(n_steps):
        if step == change_lr_at:
            for group in optimizer.param_groups:
                group["lr"] = 0.003  # a changed setting is used from the next step
        optimizer.zero_grad()
        module.loss(x, eps).loss.backward()
        optimizer.step()


def test_parameters_and_gradients_are_views_of_the_flat_buffers():
    module = _small_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = _optimizer(module, lr=0.01)
    for name, value in module.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)  # values kept
    for p in module.parameters():
        inside = [p.data_ptr() - b.data_ptr() in range(4 * b.numel()) for b in optimizer.buffers]
        assert any(inside)
    x, eps = _batch()
    module.loss(x, eps).loss.backward()
    flat = torch.cat([g.grad.reshape(-1) for g in optimizer._groups])
    assert flat.abs().sum() > 0  # autograd added the gradients in place
    optimizer.zero_grad()
    assert all(p.grad.abs().sum() == 0 for p in module.parameters())


def test_weight_decay_shrinks_network_weights_only():
    module = _small_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = _optimizer(module, lr=0.1, weight_decay=0.5)
    optimizer.zero_grad()  # no gradient: only the decay moves anything
    optimizer.step()
    after = module.state_dict()
    for name, value in before.items():
        is_weight = name.startswith(("encoder", "decoder")) and name.endswith("weight")
        # AdamW's decoupled decay: w <- w (1 - lr * weight_decay).
        expected = value * (1 - 0.1 * 0.5) if is_weight else value
        torch.testing.assert_close(after[name], expected, msg=name)
    assert any(k.startswith("likelihood") for k in before)  # the noise was checked too


@pytest.mark.parametrize("private", [True, False], ids=["fused", "public"])
def test_steps_are_torch_adamws(monkeypatch, private):
    monkeypatch.setattr(optim, "USE_PRIVATE_API", private)
    ours, reference = _small_module(), _small_module()
    optimizer = _optimizer(ours, lr=0.01, weight_decay=0.1)
    assert optimizer._fused is None
    decayed = [p for net in (reference.encoder, reference.decoder) for p in net.parameters()
               if p.ndim >= 2]  # fmt: skip
    ids = {id(p) for p in decayed}
    torch_adamw = torch.optim.AdamW(
        [
            {"params": decayed, "weight_decay": 0.1},
            {"params": [p for p in reference.parameters() if id(p) not in ids], "weight_decay": 0},
        ],
        lr=0.01,
    )
    _train(ours, optimizer, change_lr_at=3)
    _train(reference, torch_adamw, change_lr_at=3)
    assert optimizer._fused is private
    pairs = zip(ours.state_dict().items(), reference.state_dict().values(), strict=True)
    for (name, a), b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    # The moments as torch.optim's ``state`` shows them, parameter by parameter.
    theirs = torch_adamw.state
    for p, q in zip(ours.parameters(), reference.parameters(), strict=True):
        assert float(optimizer.state[p]["step"]) == float(theirs[q]["step"]) == 6
        torch.testing.assert_close(optimizer.state[p]["exp_avg"], theirs[q]["exp_avg"])


def test_state_dict_round_trips_and_reads_torch_optims_form():
    module = _small_module()
    optimizer = _optimizer(module, lr=0.01)
    _train(module, optimizer)
    copy = _small_module()
    again = _optimizer(copy, lr=0.5)
    again.load_state_dict(optimizer.state_dict())
    assert again.n_steps == 6 and again.param_groups[0]["lr"] == 0.01
    for a, b in zip(again.state.values(), optimizer.state.values(), strict=True):
        torch.testing.assert_close(a["exp_avg_sq"], b["exp_avg_sq"], rtol=0, atol=0)
    # A model saved when optimizer_ was a torch.optim.AdamW.
    reference = _small_module()
    torch_adamw = torch.optim.AdamW(reference.parameters(), lr=0.01)
    _train(reference, torch_adamw)
    single = AdamW([{"params": list(_small_module().parameters())}], lr=0.01)
    single.load_state_dict(torch_adamw.state_dict())
    assert single.n_steps == 6
    for ours, theirs in zip(single.state.values(), torch_adamw.state.values(), strict=True):
        torch.testing.assert_close(ours["exp_avg"], theirs["exp_avg"], rtol=0, atol=0)


@pytest.mark.parametrize("horizon, every", [(20, 1), (40, 2), (30, 3)])
def test_weight_average_matches_an_exponential_average_computed_by_hand(horizon, every):
    buffer = torch.zeros(5)
    average = WeightAverage([buffer], horizon=horizon, every=every)
    expected = buffer.clone().numpy()
    n_updates = 0
    for t in range(1, 60 * every):
        buffer += 1.0  # the weights move; the average follows with a lag
        average.step()
        if t % every == 0:  # only every every-th step's weights are taken
            n_updates += 1
            # The horizon counts steps: horizon / every updates.
            decay = min(1 - every / horizon, (1 + n_updates) / (10 + n_updates))
            expected = decay * expected + (1 - decay) * buffer.numpy()
        np.testing.assert_allclose(average.average[0].numpy(), expected, rtol=1e-5)
    before = buffer.clone()
    with average.applied():
        np.testing.assert_allclose(buffer.numpy(), expected, rtol=1e-5)
    np.testing.assert_array_equal(buffer.numpy(), before.numpy())
    average.copy_to_module()
    np.testing.assert_allclose(buffer.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("early_stopping", [True, False], ids=["validation", "no_validation"])
def test_public_api_fallback_trains_the_same_model_up_to_rounding(monkeypatch, early_stopping):
    # With early stopping, validation swaps the average in and out (applied); without,
    # training ends by copying it into the module (copy_to_module).
    X = load_digits().data[:1500]
    models = {}
    for private in (True, False):
        monkeypatch.setattr(optim, "USE_PRIVATE_API", private)
        vae = VAEEstimator(
            hidden_layer_sizes=(32,), max_iter=4, early_stopping=early_stopping, random_state=0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.fit(X)
        assert vae.optimizer_._fused is private
        models[private] = vae.module_.state_dict()
    for name, value in models[True].items():
        torch.testing.assert_close(value, models[False][name], rtol=1e-4, atol=1e-5, msg=name)
