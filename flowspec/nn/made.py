"""MADE: a masked MLP whose outputs are autoregressive in its inputs (Germain et al. 2015).

Every input element ``j`` has a degree ``degrees[j]`` in ``1..D``, its position in the order
plus one. A hidden unit of degree ``k`` sees inputs of degree ``<= k``, and the ``P`` outputs of
element ``i`` see hidden units of degree ``< degrees[i]``, so they depend only on elements
strictly earlier in the order. The degrees (and the exact dependency structure they imply) are
computed without torch in :mod:`flowspec.layers.autoregressive`, which the graph's mixing
analysis shares. A context vector reaches every unit of the first layer unmasked (every output
directly when there is no hidden layer), so every output, the first element's included, can
depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowspec.layers.autoregressive import hidden_degrees, input_degrees
from flowspec.nn.emit import Emitted, literal
from flowspec.nn.nets import ACTIVATIONS, ACTIVATIONS_SOURCE

__all__ = ["MADE", "MaskedLinear"]


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 mask of shape ``(out, in)``.

    The mask is a non-persistent buffer: it follows ``.to()`` but stays out of the state dict
    (it is rebuilt from the spec).
    """

    def __init__(self, mask: Tensor, bias: bool = True) -> None:
        super().__init__(mask.shape[1], mask.shape[0], bias=bias)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation: ``(N, D) -> (N, P, D)``.

    Arguments:
        order: the order as a permutation, ``order[r]`` the element placed ``r``-th.
        num_params: outputs per element ``P`` (the elementwise transform's parameter count).
        hidden: widths of the hidden layers (may be empty, or narrower than ``D``).
        context_features: width ``K`` of the context features ``(N, K)``; 0 for none.
        activation: a name in :data:`flowspec.nn.nets.ACTIVATIONS`.
        zero_init: zero the output layer, so every output starts at 0 (an autoregressive layer
            then starts as the identity for transforms whose zero parameters are the identity).

    Attributes:
        degrees: ``degrees[j]`` in ``1..D``; output ``i`` depends on input ``j`` only if
            ``degrees[j] < degrees[i]``.

    Example:
        >>> made = MADE((2, 1, 0), num_params=2, hidden=[8])
        >>> made(torch.randn(5, 3)).shape, made.degrees
        (torch.Size([5, 2, 3]), (3, 2, 1))
    """

    def __init__(
        self,
        order: Sequence[int],
        num_params: int,
        hidden: Sequence[int] = (64, 64),
        *,
        context_features: int = 0,
        activation: str = "relu",
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        features = len(order)
        self.features, self.num_params = features, num_params
        self.order, self.hidden, self.activation = tuple(order), tuple(hidden), activation
        self.degrees = tuple(input_degrees(order))
        previous = torch.tensor(self.degrees)
        layers: list[nn.Module] = []
        for degrees in hidden_degrees(hidden, features, context_features > 0):
            current = torch.tensor(degrees)
            layers += [
                MaskedLinear(current[:, None] >= previous[None, :]),
                ACTIVATIONS[activation](),
            ]
            previous = current
        outputs = torch.tensor(self.degrees).repeat(num_params)  # unit p * D + i: element i
        head = MaskedLinear(outputs[:, None] > previous[None, :])
        self.layers = nn.ModuleList([*layers, head])
        first = hidden[0] if hidden else features * num_params
        self.context = nn.Linear(context_features, first, bias=False) if context_features else None
        if zero_init:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
            if self.context is not None and not hidden:
                nn.init.zeros_(self.context.weight)

    def connectivity(self) -> Tensor:
        """Boolean ``(D, D)``: entry ``[i, j]`` says output ``i`` may depend on input ``j``."""
        degrees = torch.tensor(self.degrees)
        return degrees[None, :] < degrees[:, None]

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``x (N, D)`` and the context features ``(N, K)`` (or None) -> ``(N, P, D)``."""
        h = self.layers[0](x)
        if self.context is not None and context is not None:
            h = h + self.context(context.to(x.dtype))
        for layer in self.layers[1:]:
            h = layer(h)
        return h.reshape(x.shape[0], self.num_params, self.features)

    def emit(self) -> Emitted:
        if self.context is not None:  # conditional flows are refused before their parts
            raise NotImplementedError("a conditional MADE cannot be written as Python source")
        args = [literal(self.order), str(self.num_params), literal(self.hidden),
                literal(self.activation)]  # fmt: skip
        own = {"ACTIVATIONS": ACTIVATIONS_SOURCE, "MADE": MADE_SOURCE}
        return Emitted(f"MADE({', '.join(args)})", own)


MADE_SOURCE = '''
class MaskedLinear(nn.Linear):
    """nn.Linear whose weight is multiplied by a fixed 0/1 mask (out, in)."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked MLP (N, D) -> (N, P, D): the P outputs of element i depend only on the elements
    before i in the order. Element j has degree (its position in the order) + 1; hidden units
    cycle through degrees 1..D-1 and see inputs of degree <= theirs; the outputs of element i
    see hidden units of degree < degrees[i]."""

    def __init__(self, order, num_params: int, hidden, activation: str) -> None:
        super().__init__()
        features = len(order)
        self.features, self.num_params = features, num_params
        degrees = [0] * features
        for position, element in enumerate(order):
            degrees[element] = position + 1
        self.degrees = tuple(degrees)
        span = max(features - 1, 1)
        previous = torch.tensor(self.degrees)
        layers: list[nn.Module] = []
        for width in hidden:
            current = torch.tensor([1 + unit % span for unit in range(width)])
            layers += [
                MaskedLinear(current[:, None] >= previous[None, :]),
                ACTIVATIONS[activation](),
            ]
            previous = current
        outputs = torch.tensor(self.degrees).repeat(num_params)  # unit p * D + i: element i
        self.layers = nn.ModuleList([*layers, MaskedLinear(outputs[:, None] > previous[None, :])])

    def forward(self, x: Tensor) -> Tensor:
        h = self.layers[0](x)
        for layer in self.layers[1:]:
            h = layer(h)
        return h.reshape(x.shape[0], self.num_params, self.features)
'''
