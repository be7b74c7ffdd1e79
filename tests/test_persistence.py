"""Saving and sharing fitted models: pickle without torch, GPU state on CPU, skops."""

import io
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEEstimator

SMALL = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0)


def _table(n=120, seed=0):
    """A mixed table with one column for each family, its values in every family's domain."""
    rng = np.random.RandomState(seed)
    return pd.DataFrame(
        {
            "height": rng.normal(170, 10, n),
            "grey": rng.rand(n),
            "pixel": rng.randint(0, 2, n).astype(float),
            "events": rng.poisson(3, n).astype(float),
            "reads": rng.negative_binomial(2, 0.3, n).astype(float),
            "colour": rng.randint(0, 4, n).astype(float),
        }
    )


FAMILIES = {
    "gaussian": ["height"],
    "continuous_bernoulli": ["grey"],
    "bernoulli": ["pixel"],
    "poisson": ["events"],
    "negative_binomial": ["reads"],
    "categorical": ["colour"],
}
# Every family alone on its own column, and all of them at once in a mixed model.
LIKELIHOODS = [*FAMILIES, "mixed"]


def _fitted(likelihood, **params):
    X = _table()
    if likelihood == "mixed":
        est = VAEEstimator(likelihood=FAMILIES, **{**SMALL, **params})
    else:
        X = X[FAMILIES[likelihood]].to_numpy()
        est = VAEEstimator(likelihood=likelihood, **{**SMALL, **params})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    return est, X


def _same_predictions(a, b, X):
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    np.testing.assert_array_equal(a.sample(7, random_state=3), b.sample(7, random_state=3))
    Z = a.transform(X)[:5]
    np.testing.assert_array_equal(a.inverse_transform(Z), b.inverse_transform(Z))


def _leaf_types(obj):
    """Types of everything in a state, through dicts, lists and tuples (keys included)."""
    if isinstance(obj, dict):
        return {dict}.union(*(_leaf_types(k) | _leaf_types(v) for k, v in obj.items()))
    if isinstance(obj, list | tuple):
        return {type(obj)}.union(*(_leaf_types(v) for v in obj))
    return {type(obj)}


class _RecordingUnpickler(pickle.Unpickler):
    """Unpickles, noting every global the stream asks for."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.globals = set()

    def find_class(self, module, name):
        self.globals.add(f"{module}.{name}")
        return super().find_class(module, name)


@pytest.mark.parametrize("likelihood", ["gaussian", "mixed"])
def test_pickle_stream_references_no_torch_global(likelihood):
    est, X = _fitted(likelihood)
    data = pickle.dumps(est)
    unpickler = _RecordingUnpickler(data)
    loaded = unpickler.load()
    # Loading the file imports numpy and skvae (which imports torch itself), never a torch
    # class or function named by the file.
    assert unpickler.globals, "the recorder saw nothing"
    assert not [g for g in unpickler.globals if g.startswith("torch")]
    assert all(g.split(".")[0] in ("numpy", "skvae", "builtins") for g in unpickler.globals)
    assert b"torch" not in data
    _same_predictions(loaded, est, X)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_saved_state_holds_only_numpy_builtins_and_skvae_types(likelihood):
    est, _ = _fitted(likelihood)
    types = _leaf_types(est.__getstate__())
    builtin = {dict, list, tuple, str, int, float, bool, type(None)}
    others = {t for t in types - builtin if t is not np.ndarray}
    assert not others, f"not numpy, builtin or skvae: {others}"
    assert not any(issubclass(t, torch.Tensor) for t in types)


class _FakeCudaTensor(torch.Tensor):
    """A tensor that says it lives on cuda:0 and refuses everything but a copy to the CPU.

    There is no GPU here: this stands in for one. Its data is a CPU tensor that only
    ``detach`` and ``.cpu()`` / ``.to("cpu")`` reach; ``.numpy()``, arithmetic and
    pickling fail, as they would (or would tie the file to CUDA) for a real CUDA tensor.
    """

    @staticmethod
    def __new__(cls, data):
        return torch.Tensor._make_wrapper_subclass(
            cls, data.shape, dtype=data.dtype, device=torch.device("cuda", 0)
        )

    def __init__(self, data):
        self.data_on_cpu = data

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten.detach.default:
            return cls(args[0].data_on_cpu.detach())
        if func is torch.ops.aten._to_copy.default and kwargs.get("device") == torch.device("cpu"):
            rest = {k: v for k, v in kwargs.items() if k != "device"}
            return func(args[0].data_on_cpu, **rest)
        raise RuntimeError(f"{func} on a (fake) CUDA tensor")


def _as_if_fitted_on_a_gpu(est):
    """Put every tensor of the module and of the Adam state on the fake CUDA device."""
    module, optimizer = est.module_, est.optimizer_
    old_params = list(module.parameters())
    module.load_state_dict(
        {k: _FakeCudaTensor(v.detach().clone()) for k, v in module.state_dict().items()},
        assign=True,
    )
    # The Adam moments: flat buffers, one per parameter group.
    for group in optimizer._groups:
        group.exp_avg = _FakeCudaTensor(group.exp_avg.clone())
        group.exp_avg_sq = _FakeCudaTensor(group.exp_avg_sq.clone())
    # The optimiser follows the module's parameters, as it would on a GPU.
    new = dict(zip(map(id, old_params), module.parameters(), strict=True))
    for group, settings in zip(optimizer._groups, optimizer.param_groups, strict=True):
        group.params = settings["params"] = [new[id(p)] for p in settings["params"]]
    est.device = "cuda"


def test_a_model_fitted_on_a_gpu_loads_and_predicts_on_a_cpu_only_machine():
    est, X = _fitted("gaussian")
    reference = pickle.loads(pickle.dumps(est))  # the same model, saved from the CPU
    _as_if_fitted_on_a_gpu(est)
    assert all(p.device.type == "cuda" for p in est.module_.parameters())
    moments = est.optimizer_.state_dict()["param_groups"]
    assert all(g[k].device.type == "cuda" for g in moments for k in ("exp_avg", "exp_avg_sq"))
    with pytest.raises(RuntimeError):  # the stand-in is faithful: no numpy without a copy
        next(est.module_.parameters()).detach().numpy()
    data = pickle.dumps(est)
    assert b"torch" not in data
    with pytest.warns(UserWarning, match="device='cuda'.*loaded with device='cpu'"):
        loaded = pickle.loads(data)
    assert loaded.device == "cpu"
    assert all(p.device.type == "cpu" for p in loaded.module_.parameters())
    _same_predictions(loaded, reference, X)
    # Its Adam state came along: training continues exactly as from the CPU copy.
    for model in (loaded, reference):
        model.set_params(device="cpu")
        model.partial_fit(X)
    _same_predictions(loaded, reference, X)


# ---------------------------------------------------------------------- skops


@pytest.fixture
def skops_io():
    # An optional extra (skvae[skops]); `make test` installs it, so these run in CI.
    return pytest.importorskip("skops.io")


def _skops_round_trip(skops_io, est, path):
    skops_io.dump(est, path)
    untrusted = skops_io.get_untrusted_types(file=path)
    # What the recipient is asked to trust: skvae's own classes, nothing else.
    assert untrusted and all(t.startswith("skvae.") for t in untrusted), untrusted
    return skops_io.load(path, trusted=untrusted), untrusted


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_skops_round_trip_gives_identical_predictions(likelihood, tmp_path, skops_io):
    est, X = _fitted(likelihood)
    loaded, untrusted = _skops_round_trip(skops_io, est, tmp_path / "model.skops")
    assert untrusted == ["skvae._estimator.VAEEstimator"]
    assert type(loaded) is VAEEstimator
    _same_predictions(loaded, est, X)
    if likelihood == "mixed":
        np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)


def test_skops_refuses_to_load_without_trusting_the_types(tmp_path, skops_io):
    est, _ = _fitted("gaussian")
    skops_io.dump(est, tmp_path / "model.skops")
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        skops_io.load(tmp_path / "model.skops")


def test_skops_round_trip_after_partial_fit_continues_identically(tmp_path, skops_io):
    X = _table()[FAMILIES["gaussian"] + FAMILIES["poisson"]].to_numpy()
    est = VAEEstimator(likelihood={"gaussian": [0], "poisson": [1]}, **SMALL)
    for block in np.array_split(X, 3):
        est.partial_fit(block)
    loaded, _ = _skops_round_trip(skops_io, est, tmp_path / "model.skops")
    _same_predictions(loaded, est, X)
    # Model, Adam state, history and seeds all survive: the next call is the same on both.
    for model in (loaded, est):
        model.partial_fit(X[:40])
    assert loaded.n_iter_ == est.n_iter_ == 4 and loaded.loss_curve_ == est.loss_curve_
    _same_predictions(loaded, est, X)
