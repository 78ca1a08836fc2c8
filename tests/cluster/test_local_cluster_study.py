"""One fake multi-node cluster with a real autoscaler on this machine, shared by the module:

- a tiny study submitted with ``ray job submit`` (Jobs API) to the head, started with explicit
  auth settings, ends SUCCEEDED; ``raycg study status`` and the trial table read it afterwards;
- while it runs, the trials' ``raycg_trial_*`` gauges appear on the head's Prometheus endpoint;
- (GPU workers added for trials that ask for a GPU, and removed when idle: tests/cluster/test_faults_cluster.py.)

Waits are bounded polls; nothing asserts on speed. The cluster is stopped by PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ray

AUTH = "disabled"
METRIC_RE = re.compile(r"^(?:ray_)?raycg_trial_(\w+)\{([^}]*)\}\s+(\S+)", re.M)


def client_env() -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE=AUTH, RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    return env


def raycg_cmd(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("raycg")), *args]


@pytest.fixture(scope="module")
def cluster():
    from raycg.cluster.local_cluster import start_local_cluster, stop_local_cluster

    temp = Path(tempfile.mkdtemp(prefix="rcq7c", dir="/tmp"))  # short: Ray sockets live there
    old = os.environ.get("RAY_metrics_report_interval_ms")
    os.environ["RAY_metrics_report_interval_ms"] = "1000"  # the cluster's processes export metrics every second
    try:
        c = start_local_cluster(temp, max_workers=2, gpus_per_worker=1, cpus_per_worker=1, head_cpus=1,
                                idle_timeout_minutes=0.15, auth_mode=AUTH, include_dashboard=True)
    finally:
        if old is None:
            os.environ.pop("RAY_metrics_report_interval_ms", None)
        else:
            os.environ["RAY_metrics_report_interval_ms"] = old
    try:
        yield c
    finally:
        stop_local_cluster(temp, missing_ok=True)
        shutil.rmtree(temp, ignore_errors=True)


def tags_of(text: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', text))


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode(errors="replace")
    except OSError:
        return []
    return [(m.group(1), tags_of(m.group(2)), float(m.group(3))) for m in METRIC_RE.finditer(text)]


@pytest.fixture(scope="module")
def submitted_job(cluster, tmp_path_factory):
    """Submit a tiny toy study with `ray job submit`, poll the job and the head's metrics endpoint."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    from raycg.cluster.local_cluster import cluster_nodes

    work = tmp_path_factory.mktemp("job")
    spec = {
        "name": "jobstudy", "pipeline": "toy",
        "grid": {"energy_weights": [0.0, 1.0], "seeds": 1},
        "resources": {"cpus": 1}, "concurrency": {"max_concurrent_trials": 1},
        "toy": {"epochs": 4, "epoch_s": 0.8, "chunks": 2, "chunk_s": 0.8},  # a few seconds per trial
        "storage": str(work / "runs"),
    }
    spec_path = work / "jobstudy.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    head = [n for n in cluster_nodes(cluster.address, AUTH) if n["Resources"].get("node:__internal_head__")]
    assert len(head) == 1 and head[0]["MetricsExportPort"], head
    port = int(head[0]["MetricsExportPort"])

    sub_id = f"raycg-test-{os.getpid()}-{int(time.time())}"
    deadline = time.monotonic() + 120
    while True:  # the head's job agent may still be starting on a busy machine: retry, bounded
        out = subprocess.run(
            [str(Path(sys.executable).with_name("ray")), "job", "submit", "--address", cluster.dashboard_url,
             "--submission-id", sub_id, "--no-wait", "--", *raycg_cmd("study", "run", str(spec_path))],
            capture_output=True, text=True, env=client_env(), timeout=120)
        if out.returncode == 0 or "No available agent" not in out.stderr or time.monotonic() > deadline:
            break
        time.sleep(3.0)
    assert out.returncode == 0, out.stderr[-2000:]

    client = JobSubmissionClient(cluster.dashboard_url)
    seen: list[tuple[str, str, float]] = []
    status = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = client.get_job_status(sub_id)
        seen += scrape(port)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            break
        time.sleep(1.0)
    return {"status": status, "logs": client.get_job_logs(sub_id), "metrics": seen,
            "study": work / "runs" / "jobstudy", "client": client, "id": sub_id}


def test_job_submitted_study_succeeds_and_is_readable(submitted_job, capsys):
    from ray.job_submission import JobStatus

    from raycg.cli import main
    from raycg.study.results import trial_table

    logs = submitted_job["logs"]
    assert submitted_job["status"] == JobStatus.SUCCEEDED, logs[-3000:]
    assert "joining the cluster" in logs  # the job's driver joined the cluster instead of starting a Ray
    assert "trials: 2/2 done" in logs

    study = submitted_job["study"]
    capsys.readouterr()
    assert main(["study", "status", str(study)]) == 0
    assert "trials: 2/2 done, 0 running, 0 failed, 0 pending" in capsys.readouterr().out
    assert main(["study", "status", str(study), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 2

    table = trial_table(str(study))
    assert sorted(table["trial_id"]) == ["w0_s0", "w1_s0"]
    assert set(table["status"]) == {"ok"}
    assert table["kl_ref_model"].notna().all()


def test_trial_gauges_on_the_heads_prometheus_endpoint(submitted_job):
    seen = submitted_job["metrics"]
    names = {name for name, _, _ in seen}
    assert {"stage", "progress", "epoch", "loss", "sim_chunk", "eta_seconds"} <= names, sorted(names)
    trials = {tags.get("trial") for _, tags, _ in seen}
    assert {"w0_s0", "w1_s0"} <= trials, trials  # tagged by the readable trial name
    assert {tags.get("study") for _, tags, _ in seen} == {"jobstudy"}
    epochs = [v for name, _, v in seen if name == "epoch"]
    assert epochs and max(epochs) >= 1  # epochs advanced while we watched (toy epochs count from 1)
    losses = {tags.get("kind") for name, tags, _ in seen if name == "loss"}
    assert "train_loss" in losses
