"""The one-machine fake cluster loses its only GPU worker node mid-trial; ``down`` leaves nothing.

The cluster (head without CPUs, at most one fake GPU worker, none at the start) runs a toy study whose
trials each need the GPU node: the autoscaler adds it (preflight says it relies on the autoscaler).
Once a trial has checkpointed two epochs, the whole node is killed (``kill -9`` of its raylet, the
raylet's agents and workers, and its log monitor), as when a machine dies. Ray's own
fake provider would keep counting the dead node and the study would wait forever; raycg's
provider forgets it, the autoscaler starts a new node, and Tune continues the trial there from its
last checkpoint. The idle worker is removed after the idle timeout, while the test polls the node list
the way ``raycg cluster local status`` does: that poll must start no job, because on Ray 2.52 every job
that starts resets each node's idle time and a polled worker would never be removed. Then
``timeout 120 raycg cluster local down`` (as an operator types it) ends every process of the cluster
and not its own wrapper.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from raycg._testing.fault_injection import redone_units, study_processes, trial_attempts

from .conftest import short_tmpdir

pytestmark = pytest.mark.ray

EPOCHS, CHUNKS = 8, 2


def _node_processes(cluster_procs: list[psutil.Process], node_id: str) -> list[psutil.Process]:
    """Every process of one fake worker node: its raylet, the raylet's descendants, its log monitor."""
    raylet = next(p for p in cluster_procs if f"--node_id={node_id}" in " ".join(p.cmdline()))
    procs = [raylet, *raylet.children(recursive=True)]
    parent = raylet.parent()  # the autoscaler's monitor process started this node
    procs += [p for p in parent.children() if "log_monitor" in " ".join(p.cmdline())] if parent else []
    return procs


def gpu_nodes(nodes: list[dict]) -> set[str]:
    return {n["NodeID"] for n in nodes if n["Resources"].get("GPU", 0) > 0}


def job_ids(address: str) -> set[str]:
    """Every job the cluster's GCS has seen (drivers that connected), read without connecting one."""
    from ray._private.services import _get_gcs_client_options
    from ray._private.state import GlobalState

    state = GlobalState()
    state._initialize_global_state(_get_gcs_client_options(address))
    try:
        return {j["JobID"] for j in state.job_table()}
    finally:
        state.disconnect()


def test_lost_node_is_replaced_and_down_leaves_no_process(tmp_path):
    from raycg.cluster.local_cluster import cluster_nodes, cluster_processes, start_local_cluster

    temp = short_tmpdir("rcgn")
    cluster = start_local_cluster(temp, max_workers=1, gpus_per_worker=1, cpus_per_worker=1, head_cpus=0,
                                  idle_timeout_minutes=0.15, include_dashboard=False)
    spec = {"name": "lostnode", "pipeline": "toy", "storage": str(tmp_path / "runs"),
            "grid": {"energy_weights": [0.0, 1.0], "seeds": 1}, "resources": {"cpus": 1, "gpu": 1},
            "concurrency": {"max_concurrent_trials": 1}, "retries": {"max_failures": 3},
            "toy": {"epochs": EPOCHS, "epoch_s": 0.5, "chunks": CHUNKS, "chunk_s": 0.3}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    study = tmp_path / "runs" / "lostnode"
    raycg = str(Path(sys.executable).with_name("raycg"))
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([raycg, "study", "run", str(tmp_path / "spec.yaml"), "--address", cluster.address],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    victim = None
    try:
        deadline = time.monotonic() + 240
        while victim is None and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
            for st_path in study.glob("trials/*/status.json"):
                st = json.loads(st_path.read_text() or "{}")
                if st.get("phase") == "train" and (st.get("step") or 0) >= 2:
                    victims = _node_processes(cluster_processes(temp, cluster), st["node_id"])
                    for p in victims:
                        p.kill()
                    victim = (st_path.parent.name, st["node_id"], st["step"], len(victims))
                    break
        assert victim is not None, (tmp_path / "driver.log").read_text()[-3000:]
        rc = driver.wait(timeout=240)  # never returns with Ray's own fake provider: the node is not replaced
        out = (tmp_path / "driver.log").read_text()
        assert rc == 0, out[-3000:]
        assert "relying on the autoscaler" in out  # preflight: no GPU node yet, but an autoscaler can add one
        # the idle GPU worker is removed after the idle timeout (9 s); wait up to 180 s for it (a loaded
        # machine slows the autoscaler's 1 s updates), polling as `raycg cluster local status` does
        jobs_before = job_ids(cluster.address)
        deadline, left, polls = time.monotonic() + 180, None, 0
        while time.monotonic() < deadline:
            left = gpu_nodes(cluster_nodes(cluster.address, "disabled"))
            polls += 1
            if not left:
                break
            time.sleep(2.0)
        new_jobs = job_ids(cluster.address) - jobs_before
        assert not new_jobs, f"{polls} node-list polls started jobs {new_jobs} (each resets the idle time on Ray 2.52)"
        assert not left, f"GPU workers still up 180 s after the study ended (idle timeout 9 s): {left}"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        log.close()
        before = study_processes(cluster.session_id, temp)
        down = subprocess.run(["timeout", "120", raycg, "cluster", "local", "down", "--temp-dir", str(temp)],
                              capture_output=True, text=True)
        left = study_processes(cluster.session_id, temp)
        shutil.rmtree(temp, ignore_errors=True)

    assert down.returncode == 0 and "local cluster down: ended" in down.stdout, down.stderr
    assert before and left == [], left  # agents, workers, the replacement node: all gone

    results = {p.parent.name: json.loads(p.read_text()) for p in study.glob("trials/*/result.json")}
    assert len(results) == 2 and all(r["status"] == "ok" for r in results.values())
    tid, node, step, n_killed = victim
    attempts = sorted(trial_attempts(study, tid), key=lambda a: a["started_unix"])
    assert n_killed >= 3  # raylet + agents (+ the trial's worker, the log monitor)
    assert len(attempts) == 2 and attempts[0]["node_id"] == node
    assert attempts[1]["node_id"] not in (node, None)  # a new node
    assert attempts[1]["restored_from"]["phase"] == "train" and attempts[1]["restored_from"]["step"] >= step
    assert redone_units(attempts, EPOCHS, CHUNKS) <= 1
