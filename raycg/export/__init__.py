"""Trained raycg models in OpenMM: an ``openmm.System`` (PythonForce), TorchScript, a CG PDB.

Units at this boundary: OpenMM's nm, kJ/mol, kJ/mol/nm (raycg's Å, kcal/mol converted with
:mod:`raycg.units`); masses amu, time ps, temperature K unchanged. ::

    from raycg.export import to_openmm, export_model
    system = to_openmm(load_model("run/model"), dataset.masses)   # openmm.System
    export_model("run/model", "data/cln025", "exported", check_frames=1000)

``raycg export MODEL --dataset DATASET --out DIR [--check]`` writes the files of
:mod:`raycg.export.bundle`; ``raycg sim run MODEL --engine openmm`` simulates with OpenMM
(:mod:`raycg.sim.openmm_engine`).
"""

from raycg.export.bundle import ErrorStats, ExportCheck, check_export, export_model
from raycg.export.potential import (
    OpenMMPotential,
    as_energy_model,
    read_system_xml,
    require_openmm,
    to_openmm,
)
from raycg.export.torchscript import (
    OpenMMTorchEnergy,
    load_torchscript,
    save_torchscript,
    torchscript_module,
)

__all__ = [
    "ErrorStats",
    "ExportCheck",
    "OpenMMPotential",
    "OpenMMTorchEnergy",
    "as_energy_model",
    "check_export",
    "export_model",
    "load_torchscript",
    "read_system_xml",
    "require_openmm",
    "save_torchscript",
    "to_openmm",
    "torchscript_module",
]
