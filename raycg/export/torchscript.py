"""The raycg energy as a TorchScript module for OpenMM-Torch's ``TorchForce``.

``forward(positions)``: positions [B, 3] in nm (float32 or float64, as OpenMM-Torch passes them)
-> the whole raycg energy (prior + network) in kJ/mol, a 0-dim tensor. Forces are its autograd
gradient, as ``TorchForce`` computes them (kJ/mol/nm). The network runs on its dense all-pairs
path (exact, the same numbers as the neighbour-list path) in float32, so the traced graph has no
data-dependent shapes.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from raycg import units as U
from raycg.errors import InputError
from raycg.export.potential import as_energy_model


class OpenMMTorchEnergy(nn.Module):
    """``forward(positions [B, 3] nm) -> energy kJ/mol`` (0-dim) of a raycg EnergyModel (float32)."""

    def __init__(self, model) -> None:
        super().__init__()
        model = copy.deepcopy(as_energy_model(model)).to("cpu", torch.float32).eval()
        if model.network is not None:
            model.network.neighbour_method = "dense"
            model.network._pair_cache = {}
        self.model = model
        self.n_beads = model.n_beads

    def forward(self, positions: Tensor) -> Tensor:
        pos_a = positions.to(torch.float32).reshape(1, self.n_beads, 3) * U.NM_TO_ANGSTROM
        return self.model(pos_a).sum() * U.KJ_PER_KCAL


def torchscript_module(model, example_positions_A) -> torch.jit.ScriptModule:
    """:class:`OpenMMTorchEnergy` of ``model`` traced at one structure ``example_positions_A``
    [B, 3] (Å; any valid conformation: the graph does not depend on it)."""
    module = OpenMMTorchEnergy(model)
    x = (
        torch.as_tensor(example_positions_A, dtype=torch.float32).reshape(module.n_beads, 3)
        * U.ANGSTROM_TO_NM
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shape checks become constants: B is fixed
        return torch.jit.trace(module, (x,), check_trace=False)


def save_torchscript(model, path: str | os.PathLike, example_positions_A) -> Path:
    """Trace (:func:`torchscript_module`) and write ``path`` with ``torch.jit.save``."""
    traced = torchscript_module(model, example_positions_A)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(path))
    return Path(path)


def require_openmmtorch():
    """The ``openmmtorch`` module, or InputError (one line) when it does not import."""
    try:
        import openmmtorch
    except Exception as exc:  # noqa: BLE001 - ImportError, or a plugin built for another torch
        first = (str(exc).splitlines() or [""])[0][:160]
        raise InputError(
            f"openmmtorch does not import ({type(exc).__name__}: {first})",
            hint="install OpenMM-Torch built for this torch "
            f"({torch.__version__}), e.g. conda-forge openmm-torch",
        ) from None
    return openmmtorch


def load_torchscript(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """``torch.jit.load`` of a ``model_openmm.pt`` (CPU)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")
