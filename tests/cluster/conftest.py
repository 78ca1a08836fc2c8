"""Fixtures of the cluster tests: short temp dirs, a tiny embedded dataset, one local Ray per module.

Every Ray here runs under its own temp dir with the auth mode set explicitly, and is ended by PID
(raycg.cluster.local_cluster.stop_local_cluster finds the processes by that temp dir).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.pop("RAY_ADDRESS", None)


def short_tmpdir(prefix: str) -> Path:
    """A short path under /tmp (Ray's unix sockets live in its temp dir: paths must stay < 108 chars)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A tiny Cα CLN025 dataset from the embedded Gō reference (seconds to make)."""
    from raycg.synth import make_embedded_reference

    out = tmp_path_factory.mktemp("cluster_data") / "cln025_tiny"
    return Path(make_embedded_reference(out, size="tiny", n_steps=2000, save_every=20, progress=False))


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray per test module (own temp dir, no dashboard, 2 CPUs, no GPU, no autoscaler)."""
    import ray

    from raycg.cluster.local_cluster import stop_local_cluster

    temp = short_tmpdir("rcq7k")
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, object_store_memory=100 * 1024**2,
             _temp_dir=str(temp), logging_level="WARNING", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        stop_local_cluster(temp, missing_ok=True)
        shutil.rmtree(temp, ignore_errors=True)


TINY_TRAINING = {
    "epochs": 3,
    "batch_size": 64,
    "progress": False,
    "early_stopping_patience": None,
    "model": {"hidden_channels": 8, "num_filters": 8, "num_interactions": 1, "num_rbf": 8, "num_types": 32},
    "loss": {"energy_target": "tica-marginal"},
}


def _tiny_cg_spec(name: str, dataset: Path, storage: Path, **extra) -> dict:
    """A CGSchNet study small enough for a few seconds per trial."""
    import copy

    spec = {
        "name": name,
        "dataset": str(dataset),
        "priors": {"bins": 24, "min_bin_count": 2, "dihedral_order": 1},
        "training": copy.deepcopy(TINY_TRAINING),
        "simulation": {"replicas": 4, "n_steps": 200, "save_every": 10, "dt_ps": 0.004, "chunks": 2},
        "evaluation": {"tica_lag": 2, "bins": 20, "noise_floor_repeats": 0},
        "grid": {"energy_weights": [0.0], "seeds": 1},
        "resources": {"cpus": 1},
        "retries": {"max_failures": 1},
        "storage": str(storage),
    }
    spec.update(extra)
    return spec


@pytest.fixture(scope="session")
def tiny_cg_spec():
    """``tiny_cg_spec(name, dataset, storage, **overrides) -> dict``: a CGSchNet study spec of tiny size."""
    return _tiny_cg_spec
