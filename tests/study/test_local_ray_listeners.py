"""A local Ray started by ``raycg study run`` listens on 127.0.0.1 only (``ss -ltnp`` while it runs).

The driver runs a toy study in its own Unix session with its own Ray temp dir; while a trial runs,
every listening TCP socket of the driver's processes (its Ray: GCS, raylet, workers, agents) must
be on the loopback interface. ``RAYCG_RAY_LOCAL_ONLY=0`` is the opt-out (Ray's default: all
interfaces), checked the same way so the test can tell the two apart.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess

import pytest
import yaml

from raycg._testing.fault_injection import driver_env, poll, start_driver, study_processes

from .conftest import end_own_processes, short_tmpdir

pytestmark = pytest.mark.ray


def listeners(pids: set[int]) -> list[tuple[str, str]]:
    """(local address, process) of every listening TCP socket of ``pids`` (from ``ss -ltnpH``)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=30).stdout
    found = []
    for line in out.splitlines():
        cols = line.split()
        for pid in pids:
            if f"pid={pid}," in line:
                found.append((cols[3], cols[-1].split('"')[1] if '"' in cols[-1] else "?"))
    return found


def is_loopback(local: str) -> bool:
    host = local.rpartition(":")[0].strip("[]")
    if host in ("*", "0.0.0.0", "::"):
        return False
    addr = ipaddress.ip_address(host)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _listeners_during_a_study(tmp_path, env_extra: dict[str, str]) -> list[tuple[str, str]]:
    if shutil.which("ss") is None:
        pytest.skip("no `ss` on this machine")
    spec = {"name": "bind", "pipeline": "toy", "storage": str(tmp_path / "runs"),
            "grid": {"energy_weights": [0.0], "seeds": 1},
            "toy": {"epochs": 40, "epoch_s": 0.25, "chunks": 1, "chunk_s": 0.0},
            "resources": {"cpus": 1}, "concurrency": {"max_concurrent_trials": 1}}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    temp = short_tmpdir("rcgb")
    status = tmp_path / "runs" / "bind" / "trials" / "w0_s0" / "status.json"
    d = start_driver(["study", "run", str(spec_path)], {**driver_env(temp), **env_extra}, tmp_path / "run.log")
    try:
        assert poll(d, status.is_file, timeout_s=240), (tmp_path / "run.log").read_text()[-2000:]
        pids = {p["pid"] for p in study_processes(d.pid, temp)}
        found = listeners(pids)
        assert d.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()[-2000:]
    finally:
        if d.poll() is None:
            d.kill()
            d.wait()
        end_own_processes(temp)
        shutil.rmtree(temp, ignore_errors=True)
    names = {name for _, name in found}
    assert {"gcs_server", "raylet"} <= names, found  # the cluster's own servers were seen
    return found


def test_a_local_study_ray_listens_on_loopback_only(tmp_path):
    found = _listeners_during_a_study(tmp_path, {})
    assert all(is_loopback(local) for local, _ in found), found


def test_the_opt_out_listens_beyond_loopback(tmp_path):
    found = _listeners_during_a_study(tmp_path, {"RAYCG_RAY_LOCAL_ONLY": "0"})
    assert not all(is_loopback(local) for local, _ in found), found


def test_loopback_addresses_are_told_from_the_others():
    assert is_loopback("127.0.0.1:6379") and is_loopback("[::ffff:127.0.0.1]:41369") and is_loopback("[::1]:80")
    assert not is_loopback("*:42727") and not is_loopback("0.0.0.0:44217") and not is_loopback("192.0.2.2:1")
