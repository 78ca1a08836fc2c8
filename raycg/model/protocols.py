"""What a potential must provide to be simulated, trained against or exported (structural types).

Positions ``pos[R, B, 3]`` (Å; R replicas of B beads), energies ``E[R]`` (kcal/mol), forces
``F[R, B, 3] = −∂E/∂pos`` (kcal/mol/Å). Nothing inherits from these: raycg's ``EnergyModel`` is a
:class:`SimulationPotential` and a :class:`ForceSource`, a ``PriorEnergy`` or any ``nn.Module``
``pos -> E`` is an :class:`EnergyFunction`. ``isinstance`` checks only that the methods exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, Union, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["EnergyFunction", "ForceFn", "ForceSource", "Potential", "SimulationPotential"]

#: ``pos[R, B, 3] -> (E[R], F[R, B, 3])``; may carry an ``info`` dict describing the pass
ForceFn = Callable[["Tensor"], "tuple[Tensor, Tensor]"]


@runtime_checkable
class EnergyFunction(Protocol):
    """``pos[R, B, 3] -> E[R]``; forces by autograd."""

    def __call__(self, pos: Tensor) -> Tensor: ...


@runtime_checkable
class ForceSource(Protocol):
    """Energies and forces in one call: ``energy_and_forces(pos) -> (E[R], F[R, B, 3])``."""

    def energy_and_forces(self, pos: Tensor) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class SimulationPotential(Protocol):
    """Builds its own simulation force pass with frozen weights (``EnergyModel.simulation_forces``):
    ``compile`` the pass, read the network's filters from a table of ``table_spacing_A`` (Å; None:
    exact), or keep it ``traceable`` for a caller that compiles the whole step."""

    def simulation_forces(self, *, compile: bool = False, table_spacing_A: float | None = None,
                          traceable: bool = False) -> ForceFn: ...


#: what :func:`raycg.sim.simulate` accepts as ``potential``
Potential = Union[SimulationPotential, ForceSource, EnergyFunction]
