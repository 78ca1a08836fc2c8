"""CG datasets: the on-disk format, importers, mapping and validation.

Format and API: :mod:`raycg.data.format`. Validation: :func:`raycg.data.validate.validate_dataset`; the
gate every command passes a dataset through: :func:`raycg.data.validate.require_valid`.
Importers (streamed, unit-converting): :mod:`raycg.data.importers`. All-atom → CG maps (Cα slice,
custom, constraint-aware forces): :mod:`raycg.data.mapping`. Importers and mapping are imported
lazily from here so ``import raycg.data`` stays light.
"""

from raycg.data.format import (
    BeadInfo,
    CGDataset,
    DatasetMeta,
    DatasetSplit,
    MappingInfo,
    compute_content_hash,
    load,
    make_cg_topology,
    save,
    split_trajectories,
)
from raycg.utils.lazy import lazy_exports

_LAZY = {
    "validate_dataset": "raycg.data.validate", "ValidationReport": "raycg.data.validate",
    "require_valid": "raycg.data.validate",
    "import_torchmd_cg": "raycg.data.importers", "import_mdtraj": "raycg.data.importers",
    "import_mdcath": "raycg.data.importers", "ca_map": "raycg.data.mapping", "custom_map": "raycg.data.mapping",
    "CGMap": "raycg.data.mapping", "describe": "raycg.data.describe",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [*_LAZY,
    "BeadInfo", "CGDataset", "DatasetMeta", "DatasetSplit", "MappingInfo", "compute_content_hash",
    "load", "make_cg_topology", "save", "split_trajectories",
]
