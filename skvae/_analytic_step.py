"""The training step with its gradients derived by hand: the ELBO without autograd.

On the data most users have, a training step is a few small matrix products, and autograd
costs more than they do: every operation of the forward pass records a node, and the
backward pass walks them one by one. ``AnalyticStep`` runs the encoder and the decoder
forward, keeping each layer's input, and then backward through hand-written derivatives,
writing each weight's gradient straight into the optimizer's flat gradient buffer: about
four operations per layer, no graph. The heads between the two networks bring their own
derivatives: the posterior's ``params_grad`` and the likelihood's ``log_prob_grad``, each
by hand for the built-in families and by autograd, on the head alone, for any other.

It covers the ELBO with one sample of z per row (``n_train_importance_samples=1``) under the
standard normal prior, dense or sparse encoder inputs, covariates, missing values and
library sizes. Anything else (the importance-weighted objective, another prior, a
dispersion per covariate level, autocast) trains through autograd (``AnalyticStep.build``
returns None). The tests compare every gradient with autograd's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._library_size import library_slope, log_library, scale_by_library, scale_by_library_grad
from ._module import VAEModule
from ._posteriors import Posterior
from ._sparse_layer import InputLinear, SparseRows

__all__ = ["AnalyticStep", "Pass", "layer", "layers"]


def _relu_derivative(grad: Tensor, out: Tensor) -> Tensor:
    # ATen's own ReLU backward: one operation instead of a comparison and a product.
    return torch.ops.aten.threshold_backward(grad, out, 0)


# Each activation, in place, and its derivative from the activation's output (in place
# on the incoming gradient where that saves an allocation).
_Activation = tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]
_ACTIVATIONS: dict[str, _Activation] = {
    "relu": (torch.relu_, _relu_derivative),
    "tanh": (torch.tanh_, lambda grad, out: grad.mul_(1.0 - out * out)),
    "logistic": (torch.sigmoid_, lambda grad, out: grad.mul_(out * (1.0 - out))),
    "identity": (lambda h: h, lambda grad, out: grad),
}


class _Layer(NamedTuple):
    weight: Tensor
    bias: Tensor
    weight_grad: Tensor  # where the weight's gradient is written (its ``.grad``)
    bias_grad: Tensor
    input_major: bool  # weight stored (in, out), as InputLinear does
    by_input: Tensor  # the weight as (in, out), a view made once: the forward's operand
    by_output: Tensor  # the weight as (out, in): the backward's operand for the input


def layer(
    weight: Tensor, weight_grad: Tensor, bias: Tensor, bias_grad: Tensor, input_major: bool
) -> _Layer:
    """An affine layer; its tensors may stack several models' as (n_models, ...)."""
    by_input = weight if input_major else weight.transpose(-1, -2)
    return _Layer(
        weight, bias, weight_grad, bias_grad, input_major, by_input, by_input.transpose(-1, -2)
    )


def layers(network: nn.Sequential) -> list[_Layer]:
    """The affine layers of an ``nn.Sequential`` (see ``_module._mlp``)."""
    return [
        layer(m.weight, m.weight.grad, m.bias, m.bias.grad, isinstance(m, InputLinear))
        for m in network
        if isinstance(m, nn.Linear | InputLinear)
    ]


class _MLP:
    """Affine layers with an activation between them, forward and back.

    With stacked weights, (n_models, ...), the inputs are (n_models, rows, width) and the
    products batched: one operation for all the models.
    """

    def __init__(self, affine: list[_Layer], activation: str) -> None:
        self.layers = affine
        self.activate, self.derivative = _ACTIVATIONS[activation]

    def forward(
        self, h: Tensor | None, sparse: SparseRows | None = None, extra: Tensor | None = None
    ) -> tuple[Tensor, list]:
        """The output, and each layer's input (what the backward pass needs).

        With ``sparse``, the first layer's inputs are those non-zero entries (``h`` is
        None), and ``extra`` the dense inputs (covariates) after them.
        """
        inputs = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            inputs.append(h)
            if i == 0 and sparse is not None:
                h = _sparse_first_layer(sparse, layer, extra)
            elif h.dim() == 3:
                h = torch.baddbmm(layer.bias.unsqueeze(-2), h, layer.by_input)
            else:
                h = torch.addmm(layer.bias, h, layer.by_input)
            if i < last:
                h = self.activate(h)
        return h, inputs

    def backward(
        self,
        grad: Tensor,
        inputs: list,
        sparse: SparseRows | None = None,
        extra: Tensor | None = None,
        need_input: bool = False,
    ) -> Tensor | None:
        """Write each layer's weight and bias gradients; the input's gradient if asked."""
        for i in reversed(range(len(self.layers))):
            layer, h = self.layers[i], inputs[i]
            product = torch.bmm if grad.dim() == 3 else torch.mm
            if i == 0 and sparse is not None:
                _sparse_first_layer_grad(sparse, layer, extra, grad)
            elif layer.input_major:
                product(h.transpose(-1, -2), grad, out=layer.weight_grad)
            else:
                product(grad.transpose(-1, -2), h, out=layer.weight_grad)
            torch.sum(grad, -2, out=layer.bias_grad)
            if i == 0 and not need_input:
                return None
            grad = product(grad, layer.by_output)
            if i > 0:
                grad = self.derivative(grad, h)
        return grad


def _sparse_first_layer(sparse: SparseRows, layer: _Layer, extra: Tensor | None) -> Tensor:
    values = None if sparse.values is None else sparse.values.to(layer.weight.dtype)
    out = F.embedding_bag(
        sparse.columns, layer.weight, sparse.row_offsets, mode="sum", per_sample_weights=values
    )
    out += layer.bias
    if extra is not None:  # the covariates' weight rows follow the sparse inputs'
        out.addmm_(extra, layer.weight[-extra.shape[1] :])
    return out


def _sparse_first_layer_grad(
    sparse: SparseRows, layer: _Layer, extra: Tensor | None, grad: Tensor
) -> None:
    values = sparse.column_values
    layer.weight_grad.copy_(
        F.embedding_bag(
            sparse.rows,
            grad,
            sparse.column_offsets,
            mode="sum",
            per_sample_weights=None if values is None else values.to(grad.dtype),
        )
    )
    if extra is not None:
        torch.mm(extra.t(), grad, out=layer.weight_grad[-extra.shape[1] :])


class Pass(NamedTuple):
    """What a forward pass keeps for its backward pass."""

    x: Tensor
    mask: Tensor | None
    sparse: SparseRows | None
    extra: Tensor | None  # covariates beside sparse encoder inputs
    posterior: Posterior
    eps: Tensor
    kl: Tensor  # KL(q(z | x) || p(z)) per row
    out: Tensor  # the likelihood's parameters: the decoder's output, scaled by a library
    encoder_inputs: list
    decoder_inputs: list
    decoded: Tensor  # the decoder's own output
    library_slope: Tensor | float | None  # d log library / d z's library column


class AnalyticStep:
    """The ELBO of a batch and its gradients by hand, written into the parameters' ``.grad``.

    ``forward`` encodes, samples z and decodes; ``backward`` computes the loss and every
    gradient. The loss is the mean over rows of -(log p(x | z) - kl_weight * KL), or with
    ``row_weights`` their weighted sum (trimmed objectives weight some rows 0). Both run
    under ``torch.no_grad()``, which the caller enters (once per epoch, not per step).
    """

    def __init__(
        self,
        module: VAEModule,
        encoder: list[_Layer] | None = None,
        decoder: list[_Layer] | None = None,
    ) -> None:
        self.module = module
        # Layers given here (stacked models') take the place of the module's own.
        self.encoder = _MLP(encoder or layers(module.encoder), module.activation)
        self.decoder = _MLP(decoder or layers(module.decoder), module.activation)

    @classmethod
    def build(
        cls, module: VAEModule, n_train_samples: int, autocast: Any
    ) -> AnalyticStep | None:
        """The step for ``module``, or None where training must go through autograd."""
        supported = (
            n_train_samples == 1
            and autocast is None
            and module.dispersion_shift is None
            and module.prior.closed_form_kl
            and module.activation in _ACTIVATIONS
            and all(p.grad is not None for p in module.parameters())
        )
        return cls(module) if supported else None

    def forward(self, batch: Mapping[str, Any], eps: Tensor) -> Pass:
        module = self.module
        x, mask = module.observed(batch)
        sparse, extra, h = batch.get("sparse"), None, batch.get("h")
        if sparse is None and h is None:
            h = module.encoder_input(x, mask, batch)
        elif module.covariates:
            extra = torch.cat([batch[key].to(x.dtype) for key in module.covariates], -1)
        params, encoder_inputs = self.encoder.forward(h, sparse, extra)
        posterior = module.posterior(params)
        z = posterior.rsample(eps)
        d = module.n_components
        decoded, decoder_inputs = self.decoder.forward(module.decoder_input(z[..., :d], batch))
        out, slope = decoded, None
        if module.library is not None:
            log_lib = log_library(module.library, z, d, batch)
            out = scale_by_library(decoded, log_lib, module.likelihood.n_features)
            slope = library_slope(module.library, z, d, batch)
        kl = posterior.kl_to_prior()
        return Pass(
            x, mask, sparse, extra, posterior, eps, kl, out, encoder_inputs, decoder_inputs,
            decoded, slope,
        )  # fmt: skip

    def backward(self, p: Pass, kl_weight: float, row_weights: Tensor | None = None) -> Tensor:
        """Write the gradients of the loss into ``.grad`` (added to what is there); the loss."""
        module = self.module
        if row_weights is None:
            weights: Tensor | float = 1.0 / p.x.shape[-2]
        else:
            weights = row_weights.unsqueeze(-1)
        log_p, grad_out = module.likelihood.log_prob_grad(p.x, p.out, p.mask, -weights)
        if module.library is not None:
            n_features = module.likelihood.n_features
            grad_out, grad_log_lib = scale_by_library_grad(p.decoded, grad_out, n_features)
        grad_z = self.decoder.backward(grad_out, p.decoder_inputs, need_input=True)
        if module.covariates:
            grad_z = grad_z[..., : module.n_components]
        if p.library_slope is not None:  # the library is z's last column
            grad_z = torch.cat([grad_z, grad_log_lib * p.library_slope], dim=-1)
        grad_params = p.posterior.params_grad(p.eps, grad_z, kl_weight * weights)
        self.encoder.backward(grad_params, p.encoder_inputs, p.sparse, p.extra)
        per_row = kl_weight * p.kl - log_p
        # One loss per model when they are stacked (rows are the last axis here).
        return per_row.mean(-1) if row_weights is None else (per_row * row_weights).sum(-1)
