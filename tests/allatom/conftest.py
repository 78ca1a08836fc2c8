from pathlib import Path

import pytest

pytest.importorskip("openmm")

@pytest.fixture(scope="session")
def cln025_pdb() -> Path:
    """The all-atom CLN025 structure the package ships."""
    from raycg.synth.go_model import native_pdb_path

    return native_pdb_path()


@pytest.fixture
def tiny_cfg():
    from raycg.allatom import AllAtomConfig

    # 4 segments x 2 frames x 25 steps (4 fs): a few hundred steps in all
    return AllAtomConfig(n_replicas=2, duration_ns=0.0008, save_every_ps=0.1, segment_ps=0.2,
                         minimise_iterations=20, equilibration_ps=0.0, unfold_ps=0.1, platform="CPU", cpu_threads=1)


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """A private local Ray (own temp dir, auth mode explicit), shut down after the module."""
    import os

    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    if ray.is_initialized():
        yield ray
        return
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2,
             _temp_dir=str(tmp_path_factory.mktemp("ray")), logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()
