"""CG datasets: the on-disk format, importers, mapping and validation."""

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

__all__ = [
    "BeadInfo", "CGDataset", "DatasetMeta", "DatasetSplit", "MappingInfo", "compute_content_hash",
    "load", "make_cg_topology", "save", "split_trajectories",
]
