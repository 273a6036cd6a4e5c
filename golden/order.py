"""Training order and random streams shared by the float and fixed-point golden models.

Both golden models must see the training samples in the same order, so that a float
run and a fixed-point run of the same configuration can be compared step by step.
The rule, in one place:

* One :class:`torch.Generator`, seeded with ``cfg.model.seed``, shuffles every epoch:
  epoch 0 is ``torch.randperm(n, generator=g)`` on a fresh generator, epoch 1 is the
  next ``randperm`` of the same generator, and so on. :func:`epoch_orders` yields these
  permutations; :func:`epoch_order` replays the generator to return one of them.
* Mini-batches are consecutive slices of an epoch's permutation
  (``order[k * batch : (k + 1) * batch]``); the last one may be shorter.

The float model's other random numbers (initial weights, the fixed DFA feedback, the
directions ``v``) come from generators of their own, seeded by :func:`derived_seed`, so
that they never disturb the order stream. The fixed-point model draws its directions from
the hardware's LFSRs instead (see ``docs/ARITHMETIC.md``); only the order is shared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch

__all__ = ["epoch_order", "epoch_orders", "derived_seed", "batches"]


def epoch_orders(n: int, seed: int) -> Iterator[torch.Tensor]:
    """Yield the sample order of epoch 0, 1, 2, ... for ``n`` training samples.

    Parameters
    ----------
    n : int
        Number of training samples.
    seed : int
        ``cfg.model.seed``; seeds the one order generator.

    Yields
    ------
    torch.LongTensor
        A permutation of ``range(n)`` per epoch.
    """
    g = torch.Generator().manual_seed(int(seed))
    while True:
        yield torch.randperm(n, generator=g)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch (epochs count from 0).

    Replays the order generator through the earlier epochs, so
    ``epoch_order(n, s, k)`` equals the ``k``-th permutation of :func:`epoch_orders`.

    Parameters
    ----------
    n, seed : int
        As for :func:`epoch_orders`.
    epoch : int
        Epoch index, from 0.

    Returns
    -------
    torch.LongTensor
        A permutation of ``range(n)``.
    """
    if epoch < 0:
        raise ValueError(f"epoch {epoch} < 0")
    orders = epoch_orders(n, seed)
    for _ in range(epoch):
        next(orders)
    return next(orders)


def batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Consecutive mini-batches of an epoch's order (the last may be shorter)."""
    return list(torch.split(order, batch_size))


def derived_seed(seed: int, stream: str) -> int:
    """A seed for a named random stream (``"init"``, ``"feedback"``, ``"directions"``),
    derived from ``cfg.model.seed``: the first 63 bits of ``sha256(f"{seed}:{stream}")``.
    """
    digest = hashlib.sha256(f"{int(seed)}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)
