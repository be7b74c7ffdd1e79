"""Pickling of the estimators: numpy arrays and builtins in the state, no torch object.

No torch object ties a saved model to a device, and skops.io can store it without trusting
torch. The estimator rebuilds its module, optimizer and inference copies on loading.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from ._columns import ColumnLayout
from ._module import VAEModule
from ._tables import Ranges
from ._trainer import History

__all__ = ["PicklingMixin", "to_numpy", "to_torch", "tree_map"]


class PicklingMixin:
    """``__getstate__`` and ``__setstate__`` of a VAE estimator (``BaseVAE`` uses it)."""

    def __getstate__(self):
        # Only numpy arrays, Python builtins and this class in the state: no torch object
        # ties the model to a device, and skops.io can store it without trusting torch.
        state = dict(super().__getstate__())
        state.pop("_inference", None)
        if "module_" in state:
            module = state["module_"]
            state["module_"] = {
                "spec": module.spec,
                "state_dict": tree_map(module.state_dict(), torch.Tensor, to_numpy),
            }
            optimizer = state["optimizer_"].state_dict()
            state["optimizer_"] = tree_map(optimizer, torch.Tensor, to_numpy)
        for key in ("_history", "_layout", "_ranges"):
            if dataclasses.is_dataclass(state.get(key)):
                state[key] = dataclasses.asdict(state[key])
        return state

    def __setstate__(self, state):
        state = dict(state)
        device = state.get("device")
        if isinstance(device, str) and device.startswith("cuda") and not torch.cuda.is_available():
            # As skorch does: a model fitted on a GPU still works on a CPU-only machine.
            warnings.warn(
                f"This model was saved with device={device!r}, but torch sees no CUDA device "
                "here; it is loaded with device='cpu' instead.",
                stacklevel=2,
            )
            state["device"] = "cpu"
        for key, kind in (("_history", History), ("_ranges", Ranges)):
            if isinstance(state.get(key), dict):
                state[key] = kind(**state[key])
        if isinstance(state.get("_layout"), dict):
            state["_layout"] = ColumnLayout.from_state(state["_layout"])
        stored = state.get("module_")
        if isinstance(stored, dict):
            module = VAEModule.from_spec(stored["spec"])
            module.load_state_dict(tree_map(stored["state_dict"], np.ndarray, to_torch))
            state["module_"] = module.eval()
        super().__setstate__(state)
        if isinstance(stored, dict):
            self.optimizer_ = self._optimizer(self.module_)
            self.optimizer_.load_state_dict(tree_map(state["optimizer_"], np.ndarray, to_torch))
            self._inference = self._build_inference()


def tree_map(obj, leaf_type, fn):
    """``fn`` applied to every ``leaf_type`` in nested dicts, lists and tuples."""
    if isinstance(obj, leaf_type):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: tree_map(v, leaf_type, fn) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(tree_map(v, leaf_type, fn) for v in obj)
    return obj


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def to_torch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array))
