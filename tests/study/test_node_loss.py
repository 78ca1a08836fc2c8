"""Multi-node: trials spread over workers, and a worker lost mid-trial costs no trial and no re-run.

A ``ray.cluster_utils.Cluster`` (head without CPUs + 2 one-CPU workers) on this machine; the study
driver is ``raycg study run --address`` in a subprocess; the test removes the worker of a running
trial hard (``allow_graceful=False``) once that trial has checkpointed a few epochs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import end_own_processes, short_tmpdir
from .conftest import read_json as _read
from .conftest import sha256 as _sha

pytestmark = pytest.mark.ray

ADDRESS_FILE = Path("/tmp/ray/ray_current_cluster")


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    # cluster_utils writes the machine-wide "current cluster" file; put back what was there
    old = ADDRESS_FILE.read_bytes() if ADDRESS_FILE.exists() else None
    made_dir = not ADDRESS_FILE.parent.exists()
    ADDRESS_FILE.parent.mkdir(parents=True, exist_ok=True)  # cluster_utils writes there unconditionally
    temp = short_tmpdir("rcgc")
    c = Cluster(initialize_head=True, connect=False,
                head_node_args={"num_cpus": 0, "temp_dir": str(temp), "include_dashboard": False,
                                "object_store_memory": 80 * 1024**2})
    try:
        if old is None:
            ADDRESS_FILE.unlink(missing_ok=True)
            if made_dir and not any(ADDRESS_FILE.parent.iterdir()):
                ADDRESS_FILE.parent.rmdir()
        else:
            ADDRESS_FILE.write_bytes(old)
        workers = [c.add_node(num_cpus=1, temp_dir=str(temp), object_store_memory=80 * 1024**2) for _ in range(2)]
        c.wait_for_nodes()
        yield c, workers
    finally:
        c.shutdown()
        end_own_processes(temp)


def test_worker_lost_mid_trial_resumes_elsewhere(cluster, tmp_path):
    c, workers = cluster
    spec = {
        "name": "multinode", "pipeline": "toy", "storage": str(tmp_path),
        "grid": {"energy_weights": [0.0, 1.0], "seeds": 2},
        "toy": {"epochs": 8, "epoch_s": 0.6, "chunks": 2, "chunk_s": 0.3},
        "resources": {"cpus": 1}, "retries": {"max_failures": 3},
    }
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "raycg", "study", "run", str(spec_path),
                               "--address", c.address], stdout=log, stderr=subprocess.STDOUT, env=env)
    study = tmp_path / "multinode"
    victim = victim_trial = None
    finished_before: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 240
        while victim is None and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.2)
            done = {p.parent.name for p in study.glob("trials/*/result.json")}
            for st_path in study.glob("trials/*/status.json"):
                st = _read(st_path)
                tid = st_path.parent.name
                if not st or tid in done or st.get("phase") != "train" or (st.get("step") or 0) < 2:
                    continue
                node = next((w for w in workers if w.node_id == st.get("node_id")), None)
                if node is not None and done:  # some trial already finished, this one is mid-training
                    finished_before = {t: _sha(study / "trials" / t / "result.json") for t in done}
                    victim, victim_trial, killed_step = node, tid, st["step"]
                    c.remove_node(node, allow_graceful=False)
                    break
        assert victim is not None, (tmp_path / "driver.log").read_text()[-3000:]
        rc = driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        log.close()
    out = (tmp_path / "driver.log").read_text()
    assert rc == 0, out[-3000:]

    results = {p.parent.name: _read(p) for p in study.glob("trials/*/result.json")}
    assert len(results) == 4 and all(r["status"] == "ok" for r in results.values()), out[-3000:]
    # the trial on the lost node resumed from its last checkpoint, on the other worker
    attempts = sorted((_read(p) for p in (study / "trials" / victim_trial / "attempts").glob("*.json")),
                      key=lambda a: a["started_unix"])
    assert len(attempts) == 2
    assert attempts[0]["node_id"] == victim.node_id and attempts[1]["node_id"] != victim.node_id
    assert attempts[1]["restored_from"]["phase"] == "train"
    assert attempts[1]["restored_from"]["step"] >= killed_step
    # no finished trial ran again, and its result is untouched
    for tid, sha in finished_before.items():
        assert len(list((study / "trials" / tid / "attempts").glob("*.json"))) == 1
        assert _sha(study / "trials" / tid / "result.json") == sha
    # trials ran on both workers and never on the CPU-less head
    nodes = {_read(p)["node_id"] for p in study.glob("trials/*/attempts/*.json")}
    assert nodes == {w.node_id for w in workers}
