"""Gradient alignment, paper eq. 20.

The angle, in degrees, between the flattened true (backpropagation) gradient of a
layer's weights and the flattened approximate gradient an algorithm uses::

    C(grad, grad_hat) = 180/pi * arccos( <grad, grad_hat> / (|grad| |grad_hat|) )   (20)

0 degrees: the same direction; 90: orthogonal (no descent guaranteed); 180: opposite.
"""

from __future__ import annotations

import math

import torch

__all__ = ["angle_deg"]


def angle_deg(true_grad: torch.Tensor, approx_grad: torch.Tensor) -> float:
    """Angle between two gradients, in degrees (paper eq. 20).

    Parameters
    ----------
    true_grad, approx_grad : torch.Tensor
        Tensors of the same number of elements; they are flattened.

    Returns
    -------
    float
        The angle in [0, 180]; ``nan`` when either gradient is zero (no direction).
    """
    a = true_grad.reshape(-1).double()
    b = approx_grad.reshape(-1).double()
    norms = torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)
    if norms == 0:
        return math.nan
    cos = (torch.dot(a, b) / norms).clamp(-1.0, 1.0)
    return math.degrees(math.acos(float(cos)))
