"""Validation losses computed the way training computes them.

Training centres the energies within each random batch of ``batch_size`` frames when the energy
loss is offset-invariant (a free energy is defined up to a constant):
``L = mean_b((r_i − mean_b r)²)`` with residuals ``r = E_pred − E_target``. A validation loss that
selects the best epoch must estimate the same quantity. Centring over consecutive chunks instead
gives another number (chunks of a trajectory are correlated, and a one-frame last chunk has loss
exactly 0). :func:`energy_validation_loss` gives the *expected* training-style loss over random
batches of ``batch_size`` validation frames, exactly and without sampling noise: for a batch of m
frames drawn without replacement from N, E[mean_b((r − mean_b r)²)] = (m − 1)/m · S², with S² the
variance (N − 1 denominator) of the residuals over all N frames.
"""

from __future__ import annotations

import torch
from torch import Tensor


def energy_validation_loss(pred: Tensor, target: Tensor, *, batch_size: int, offset_invariant: bool) -> Tensor:
    """Energy MSE of all validation frames, (kcal/mol)²; ``offset_invariant``: the expected loss of a
    random training batch of ``batch_size`` frames centred within the batch (module docstring)."""
    r = (pred - target).double()
    n = r.numel()
    if not offset_invariant:
        return r.square().mean()
    if n < 2:
        return r.new_zeros(())
    m = min(int(batch_size), n)
    s2 = (r - r.mean()).square().sum() / (n - 1)
    return s2 * ((m - 1) / m)


def sampled_energy_validation_loss(pred: Tensor, target: Tensor, *, batch_size: int, n_batches: int,
                                   generator: torch.Generator) -> Tensor:
    """Monte-Carlo counterpart of :func:`energy_validation_loss` (offset-invariant): the mean centred
    MSE of ``n_batches`` random batches of ``batch_size`` frames (for checking the formula)."""
    n = pred.numel()
    m = min(int(batch_size), n)
    total = pred.new_zeros((), dtype=torch.float64)
    for _ in range(n_batches):
        idx = torch.randperm(n, generator=generator)[:m]
        p, t = pred[idx].double(), target[idx].double()
        total = total + ((p - p.mean()) - (t - t.mean())).square().mean()
    return total / n_batches
