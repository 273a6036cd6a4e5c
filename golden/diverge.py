"""Divergence: a training run whose loss turns non-finite or explodes stops at once.

Both golden models' training loops call :func:`check_divergence` on the logits of the
last few dozen samples; a run that diverged would otherwise go on for hours and end at
chance accuracy with exit status 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["TrainingDiverged", "check_divergence", "EXPLOSION_FACTOR"]

#: A mean cross-entropy above this many times the chance loss (``ln n_L``) counts as diverged.
EXPLOSION_FACTOR = 20.0


class TrainingDiverged(ArithmeticError):
    """The training loss became non-finite or exploded.

    Members
    -------
    epoch : int
        Epoch (from 1) in which it happened.
    sample : int
        Samples of that epoch trained so far.
    loss : float
        Mean cross-entropy of the last samples checked.
    lr : float
        The learning rate in use.
    history : list of dict
        The completed epochs' history entries.
    """

    def __init__(self, epoch: int, sample: int, loss: float, lr: float, fix: str, history: list):
        self.epoch, self.sample, self.loss, self.lr, self.history = epoch, sample, loss, lr, list(history)
        super().__init__(f"training diverged in epoch {epoch} after {sample} samples: loss {loss:.4g} "
                         f"at learning rate {lr:.4g}. Fix: {fix}")


def check_divergence(logits: torch.Tensor, labels: torch.Tensor, *, epoch: int, sample: int, lr: float,
                     fix: str, history: list) -> None:
    """Raise :class:`TrainingDiverged` when ``logits`` (``(N, n_L)``, recent samples) are
    not finite or their mean cross-entropy against ``labels`` exceeds
    :data:`EXPLOSION_FACTOR` times the chance loss."""
    if logits.numel() == 0:
        return
    logits = logits.double()
    loss = float(F.cross_entropy(logits, labels)) if torch.isfinite(logits).all() else math.nan
    if not math.isfinite(loss) or loss > EXPLOSION_FACTOR * math.log(logits.shape[1]):
        raise TrainingDiverged(epoch, sample, loss, lr, fix, history)
