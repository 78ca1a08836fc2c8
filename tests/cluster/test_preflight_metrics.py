"""Preflight checks and trial gauges as plain functions (no Ray started here)."""

from __future__ import annotations

import pytest

from raycg.errors import ConfigError
from raycg.study.preflight import ClusterSnapshot, check_cluster, filesystem_type
from raycg.study.spec import StudySpec
from raycg.study.trial.metrics import STAGES, TrialMetrics


def spec(storage="/tmp/raycg-preflight-test", **resources) -> StudySpec:
    return StudySpec.model_validate({"name": "p", "pipeline": "toy", "grid": {"energy_weights": [0.0], "seeds": 1},
                                     "resources": {"cpus": 1, **resources}, "storage": storage})


CPU_NODE = {"host": "a", "resources": {"CPU": 4.0}}
GPU_NODE = {"host": "a", "resources": {"CPU": 4.0, "GPU": 1.0}}


def one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_gpu_request_without_gpu_or_autoscaler_fails():
    with pytest.raises(ConfigError) as err:
        check_cluster(spec(gpu=0.5), ClusterSnapshot(nodes=[CPU_NODE]))
    msg = one_line(err)
    assert "resources.gpu" in msg and "0.5 GPU" in msg and "no autoscaler" in msg and "resources.gpu: 0" in msg


def test_gpu_request_passes_with_a_gpu_node_or_an_autoscaler():
    check_cluster(spec(gpu=1), ClusterSnapshot(nodes=[CPU_NODE, GPU_NODE]))
    lines: list[str] = []
    check_cluster(spec(gpu=1), ClusterSnapshot(nodes=[CPU_NODE], autoscaler=True), log=lines.append)
    assert any("relying on the autoscaler" in ln for ln in lines)


def test_autoscaler_limits_are_respected_where_published():
    snap = ClusterSnapshot(nodes=[CPU_NODE], autoscaler=True, max_resources={"CPU": 64.0})
    with pytest.raises(ConfigError, match="autoscaler can provide at most 0"):
        check_cluster(spec(gpu=1), snap)
    check_cluster(spec(gpu=1), ClusterSnapshot(nodes=[CPU_NODE], autoscaler=True,
                                               max_resources={"CPU": 64.0, "GPU": 8.0}))


def test_more_cpus_or_custom_resources_than_any_node():
    with pytest.raises(ConfigError, match=r"resources\.cpus: each trial asks for 8 CPU"):
        check_cluster(spec(cpus=8), ClusterSnapshot(nodes=[CPU_NODE, CPU_NODE]))
    with pytest.raises(ConfigError, match=r"resources\.extra\.tpu"):
        check_cluster(spec(extra={"tpu": 1}), ClusterSnapshot(nodes=[CPU_NODE]))


def test_local_storage_with_several_machines_fails_shared_storage_passes(monkeypatch):
    two_hosts = ClusterSnapshot(nodes=[CPU_NODE, {"host": "b", "resources": {"CPU": 4.0}}])
    with pytest.raises(ConfigError) as err:
        check_cluster(spec(), two_hosts)
    msg = one_line(err)
    assert msg.startswith("spec: storage: /tmp/raycg-preflight-test is a local directory") and "2 machines" in msg
    check_cluster(spec("s3://bucket/studies"), two_hosts)
    check_cluster(spec(), ClusterSnapshot(nodes=[CPU_NODE, CPU_NODE]))  # several nodes, one machine
    monkeypatch.setattr("raycg.study.preflight.filesystem_type", lambda path: "nfs4")
    check_cluster(spec(), two_hosts)


def test_filesystem_type_of_a_path_that_does_not_exist_yet(tmp_path):
    assert filesystem_type(str(tmp_path / "not" / "yet")) == filesystem_type(str(tmp_path))


def test_run_study_on_this_cpu_only_machine_refuses_a_gpu_request(tmp_path, capsys):
    """No Ray running, no address: the study would start a local Ray on this machine (no GPU)."""
    import ray
    import yaml

    from raycg.cli import main

    if ray.is_initialized():  # pragma: no cover - the Ray test modules shut theirs down
        pytest.skip("a Ray is connected in this process")
    from raycg.study.preflight import cluster_snapshot

    if any(n["resources"].get("GPU") for n in cluster_snapshot().nodes):
        pytest.skip("this machine has a GPU")
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump({"name": "g", "pipeline": "toy", "grid": {"energy_weights": [0.0], "seeds": 1},
                                    "resources": {"cpus": 1, "gpu": 1}, "storage": str(tmp_path / "runs")}))
    assert main(["study", "run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: resources.gpu: each trial asks for 1 GPU")
    assert not (tmp_path / "runs" / "g").exists()
    assert not ray.is_initialized()  # nothing was started


def test_trial_metrics_steps_per_second_and_eta_without_ray():
    t = [0.0]
    m = TrialMetrics("w0_s0", "s", (1000, 4), clock=lambda: t[0])
    assert not m.enabled  # outside Ray: a no-op that still remembers what it would set
    m.update({"epoch": 0, "train_loss": 3.0, "val_loss": 2.0}, phase="train", progress=0.25)
    t[0] = 10.0
    m.update({"epoch": 1, "val_loss": 1.0}, phase="train", progress=0.5)
    assert m.values["eta_seconds"] == pytest.approx(10.0)  # half done in 10 s -> 10 s left
    assert m.values["loss:val_loss"] == 1.0 and m.values["epoch"] == 1.0
    t[0] = 15.0
    m.update({"chunk": 1}, phase="simulate", progress=0.75)
    assert m.values["sim_steps_per_s"] == pytest.approx(250 / 5.0)  # 1000/4 steps since the last report
    t[0] = 20.0
    m.update({"chunk": 3}, phase="simulate", progress=0.9)
    assert m.values["sim_steps_per_s"] == pytest.approx(500 / 5.0)
    m.finish("failed")
    assert m.values["stage"] == STAGES["failed"] and m.values["progress"] == 1.0


def test_restored_trial_eta_counts_only_its_own_progress():
    t = [100.0]
    m = TrialMetrics("w0_s0", "s", None, restored=True, clock=lambda: t[0])
    m.update({"chunk": 1}, phase="simulate", progress=0.6)
    assert "eta_seconds" not in m.values  # no rate yet
    t[0] = 110.0
    m.update({"chunk": 2}, phase="simulate", progress=0.8)
    assert m.values["eta_seconds"] == pytest.approx(10.0)


def test_read_only_monitor_is_not_an_autoscaler():
    """Every Ray head runs a monitor; without an autoscaling config its node types are the nodes' ids."""
    from raycg.study.preflight import has_autoscaler

    local = {"autoscaler_report": {"active_nodes": {"node_85ab": 1}, "node_type_mapping": {"85ab": "node_85ab"}}}
    fake = {"autoscaler_report": {"active_nodes": {"ray.head.default": 1},
                                  "node_type_mapping": {"ffff": "ray.head.default"}}}
    assert not has_autoscaler(local) and has_autoscaler(fake) and not has_autoscaler({})


def test_tune_cli_spec_errors_name_file_line_and_field(tmp_path, capsys):
    from raycg.cli import main

    base = ("name: t\npipeline: toy\ngrid: {energy_weights: [0.0], seeds: 1}\ntoy: {lr: 0.1}\n"
            f"storage: {tmp_path / 'runs'}\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text(base)
    assert main(["study", "tune", str(plain)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "search: required field is missing" in err[0] and "raycg study run" in err[0]

    typo = tmp_path / "typo.yaml"
    typo.write_text(base + "search:\n  num_samples: 4\n  params:\n    toy.lr: {loguniform: [0.1, 0.01]}\n")
    assert main(["study", "tune", str(typo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {typo}:9: search.params.toy.lr: ") and "below high" in err[0]
    assert not (tmp_path / "runs").exists()


# --- an --address that nothing answers -------------------------------------------------------------

def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_an_address_nothing_listens_on_is_refused_with_one_line(tmp_path):
    import subprocess
    import sys

    port = _closed_port()
    spec = tmp_path / "toy.yaml"
    spec.write_text(f"name: t\npipeline: toy\nstorage: {tmp_path}\ngrid: {{energy_weights: [0], seeds: 1}}\n")
    out = subprocess.run([sys.executable, "-m", "raycg", "study", "run", str(spec), "--address",
                          f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith(f"error: --address 127.0.0.1:{port}: connection refused"), lines
    assert "Traceback" not in out.stderr and not (tmp_path / "t").exists()


def test_an_address_that_does_not_answer_is_refused_after_the_stated_timeout(monkeypatch):
    import socket

    from raycg.errors import ConfigError
    from raycg.study import preflight as pf

    def silent(address, timeout):
        assert timeout == 0.5 and address == ("10.1.2.3", 6379)
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    monkeypatch.setenv("RAYCG_CONNECT_TIMEOUT_S", "0.5")
    with pytest.raises(ConfigError, match=r"--address ray://10\.1\.2\.3:6379: no answer within 0\.5 s"):
        pf.probe_address("ray://10.1.2.3:6379")
    pf.probe_address("auto")  # no host:port: left to Ray
