"""All-atom reference MD with OpenMM (Ray-free; ``raycg.allatom.distributed`` distributes it).

- :class:`AllAtomConfig` — force field, solvent, temperature, HMR/timestep, replicas, segments.
- :func:`run_replica` — one replica in checkpointed segments (positions + forces every k steps).
- :func:`assemble_dataset` — map replicas to a CG dataset (constraint-aware Cα force map).
"""

from raycg.allatom.assemble import assemble_dataset
from raycg.allatom.config import AllAtomConfig
from raycg.allatom.replica import read_progress, replica_dir, run_replica, write_run_manifest
from raycg.allatom.system import build_system, choose_platform

__all__ = ["AllAtomConfig", "assemble_dataset", "build_system", "choose_platform", "read_progress",
           "replica_dir", "run_replica", "write_run_manifest"]
