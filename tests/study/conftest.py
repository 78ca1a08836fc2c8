"""Fixtures of the study tests: one tiny embedded reference per session, one local Ray per module."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


@pytest.fixture(scope="session")
def study_dataset(tmp_path_factory) -> Path:
    """A small Cα CLN025 dataset from the embedded Gō reference (8 replicas x 100 frames)."""
    from raycg.synth import make_embedded_reference

    out = tmp_path_factory.mktemp("study_data") / "cln025_small"
    return Path(make_embedded_reference(out, size="tiny", n_steps=2000, save_every=20, progress=False))


def read_json(path: Path):
    """A JSON file's contents, or None while it is missing or being replaced."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def short_tmpdir(prefix: str) -> Path:
    """A short path under /tmp (Ray's unix sockets live in its temp dir: paths must stay < 108 chars)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def pids_under(temp_dir: Path) -> list[int]:
    """PIDs of processes whose command line names ``temp_dir`` (the Ray processes of *our* session)."""
    out = []
    needle = str(temp_dir)
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd:
            out.append(int(p.name))
    return out


def end_own_processes(temp_dir: Path) -> None:
    """End (by PID) only the processes started under our own Ray temp dir."""
    for pid in pids_under(temp_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray per test module (own temp dir, no dashboard, auth mode set)."""
    import ray

    temp = short_tmpdir("rcgt")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2,
             _temp_dir=str(temp), logging_level="WARNING", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        end_own_processes(temp)
        shutil.rmtree(temp, ignore_errors=True)
