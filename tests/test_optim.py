"""The optimizer and the weight average, and their shortcuts through torch's private API."""

import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import skvae._optim as optim
from skvae import VAEEstimator, VAEModule
from skvae._likelihoods import prepare_likelihood
from skvae._optim import FusedAdamWStep, WeightAverage, make_optimizer


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


def test_weight_decay_shrinks_network_weights_only():
    module = _small_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = _optimizer(module, lr=0.1, weight_decay=0.5)
    for p in module.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only the decay moves anything
    optimizer.step()
    after = module.state_dict()
    for name, value in before.items():
        is_weight = name.startswith(("encoder", "decoder")) and name.endswith("weight")
        # AdamW's decoupled decay: w <- w (1 - lr * weight_decay).
        expected = value * (1 - 0.1 * 0.5) if is_weight else value
        torch.testing.assert_close(after[name], expected, msg=name)
    assert any(k.startswith("likelihood") for k in before)  # the noise was checked too


def test_no_weight_decay_is_plain_adam():
    ours, reference = _small_module(), _small_module()
    optimizer = _optimizer(ours, lr=0.01)
    adam = torch.optim.Adam(reference.parameters(), lr=0.01)
    x, eps = _batch()
    for module, opt in [(ours, optimizer), (reference, adam)]:
        for _ in range(3):
            opt.zero_grad()
            module.loss(x, eps).loss.backward()
            opt.step()
    pairs = zip(ours.state_dict().items(), reference.state_dict().values(), strict=True)
    for (name, a), b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_fused_adamw_step_is_the_optimizers_step():
    ours, reference = _small_module(), _small_module()
    stepper = FusedAdamWStep(_optimizer(ours, lr=0.01, weight_decay=0.1))
    optimizer = _optimizer(reference, lr=0.01, weight_decay=0.1)
    assert stepper.fast
    x, eps = _batch()
    for n_steps, (module, opt) in enumerate([(ours, stepper), (reference, optimizer)] * 4):
        if n_steps == 4:
            for group in (stepper.optimizer.param_groups, optimizer.param_groups):
                group[0]["lr"] = 0.003  # a changed setting is used from the next step
        opt.zero_grad()  # both set the gradients to None
        module.loss(x, eps).loss.backward()
        opt.step()
    assert stepper._groups is not None  # the later steps took the direct path
    pairs = zip(ours.state_dict().items(), reference.state_dict().values(), strict=True)
    for (name, a), b in pairs:
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    ours_state = stepper.optimizer.state_dict()["state"]
    for key, value in optimizer.state_dict()["state"].items():
        for field in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours_state[key][field], value[field], rtol=0, atol=0)


@pytest.mark.parametrize("horizon, every", [(20, 1), (40, 2), (30, 3)])
def test_weight_average_matches_an_exponential_average_computed_by_hand(horizon, every):
    module = VAEModule.from_spec(
        {
            "n_features": 2,
            "n_components": 1,
            "hidden_layer_sizes": (),
            "activation": "relu",
            "likelihood": {"name": "bernoulli"},
        }
    )
    weight = module.decoder[0].weight
    average = WeightAverage(module, horizon=horizon, every=every)
    expected = weight.detach().clone().numpy()
    n_updates = 0
    for t in range(1, 60 * every):
        with torch.no_grad():
            weight += 1.0  # the weights move; the average follows with a lag
        average.step()
        if t % every == 0:  # only every every-th step's weights are taken
            n_updates += 1
            # The horizon counts steps: horizon / every updates.
            decay = min(1 - every / horizon, (1 + n_updates) / (10 + n_updates))
            expected = decay * expected + (1 - decay) * weight.detach().numpy()
        got = average.average[[p is weight for p in average.params].index(True)].numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    before = weight.detach().clone()
    with average.applied():
        np.testing.assert_allclose(weight.detach().numpy(), expected, rtol=1e-5)
    np.testing.assert_array_equal(weight.detach().numpy(), before.numpy())
    average.copy_to_module()
    np.testing.assert_allclose(weight.detach().numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("early_stopping", [True, False], ids=["validation", "no_validation"])
def test_public_api_fallbacks_train_bitwise_the_same_model(monkeypatch, early_stopping):
    # With early stopping, validation swaps the average in and out (applied); without,
    # training ends by copying it into the module (copy_to_module).
    X = load_digits().data[:1500]
    models, calls = {}, {}
    for private in (True, False):
        monkeypatch.setattr(optim, "USE_PRIVATE_API", private)
        vae = VAEEstimator(
            hidden_layer_sizes=(32,), max_iter=4, early_stopping=early_stopping, random_state=0
        )
        adamw = mock.patch.object(optim, "_adamw", wraps=optim._adamw)
        lerp = mock.patch.object(optim, "_lerp_", wraps=optim._lerp_)
        with adamw as adamw_spy, lerp as lerp_spy, warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.fit(X)
        models[private] = vae.module_.state_dict()
        calls[private] = (adamw_spy.call_count, lerp_spy.call_count)
    # The direct AdamW step only with the private API; the average updated on either path.
    assert calls[True][0] > 0 and calls[False][0] == 0
    assert calls[True][1] == calls[False][1] > 0
    assert models[True].keys() == models[False].keys()
    for name, value in models[True].items():
        assert torch.equal(value, models[False][name]), name
