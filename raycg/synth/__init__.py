"""The embedded reference system: a two-resolution Gō-type model of CLN025 simulated with raycg.

``embedded_dataset()`` returns the packaged reference, written once into the cache from
``raycg/resources/embedded_cln025.npz`` (no simulation); ``make_embedded_reference(out_dir, seed=0, ...)``
regenerates it (``raycg data synth --out PATH``) and ``pack_resource`` packs a dataset into the resource.
``landscape_summary`` measures basins, barriers, transitions and implied timescales of a reference.
This synthetic system serves quickstarts and tests; real studies use all-atom data.
"""

from raycg.synth.go_model import (
    GoParameters,
    GoPotential,
    GoSystem,
    build_go_system,
    kabsch_rmsd,
    misfolded_structure,
    native_pdb_path,
)
from raycg.synth.landscape import basin_barriers, landscape_summary
from raycg.synth.reference import (
    FOLDED_RMSD_A,
    SIZES,
    TICA_LAG_FRAMES,
    cache_root,
    count_transitions,
    embedded_dataset,
    make_embedded_reference,
    summarize_rmsd,
)
from raycg.synth.resource import pack_resource, unpack_resource

__all__ = [
    "FOLDED_RMSD_A", "SIZES", "TICA_LAG_FRAMES", "GoParameters", "GoPotential", "GoSystem", "basin_barriers",
    "build_go_system", "cache_root", "count_transitions", "embedded_dataset", "kabsch_rmsd", "landscape_summary",
    "make_embedded_reference", "misfolded_structure", "native_pdb_path", "pack_resource", "summarize_rmsd",
    "unpack_resource",
]
