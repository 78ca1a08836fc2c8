"""The embedded reference system: a two-resolution Gō-type model of CLN025 simulated with raycg.

``make_embedded_reference(out_dir, seed=0, ...)`` writes a Cα-mapped dataset; ``embedded_dataset()``
returns the default one from the cache (generated once); ``raycg data synth --out PATH`` is the CLI.
This synthetic system serves quickstarts and tests; real studies use all-atom data.
"""

from raycg.synth.go_model import (
    GoParameters,
    GoPotential,
    GoSystem,
    build_go_system,
    kabsch_rmsd,
    native_pdb_path,
)
from raycg.synth.reference import (
    FOLDED_RMSD_A,
    SIZES,
    cache_root,
    count_transitions,
    embedded_dataset,
    make_embedded_reference,
    summarize_rmsd,
)

__all__ = [
    "FOLDED_RMSD_A", "SIZES", "GoParameters", "GoPotential", "GoSystem", "build_go_system", "cache_root",
    "count_transitions", "embedded_dataset", "kabsch_rmsd", "make_embedded_reference", "native_pdb_path",
    "summarize_rmsd",
]
