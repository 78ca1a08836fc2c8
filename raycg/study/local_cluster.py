"""A fake multi-node Ray cluster with a real autoscaler on one machine.

``start_local_cluster`` starts a Ray head with the autoscaler and the ``fake_multinode``
provider: when trials ask for GPUs the autoscaler "launches" fake GPU worker nodes (real raylets
on this machine advertising ``GPU: 1``) and removes them after the idle timeout. Everything runs
under its own ``--temp-dir`` and ports; ``stop_local_cluster`` ends only the processes that
belong to that temp dir, by PID (never the global Ray stop command, which ends every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from raycg.errors import InputError
from raycg.utils.io import atomic_write_json, atomic_write_text

STATE_FILE = "raycg_local_cluster.json"


@dataclass
class LocalCluster:
    """A running local fake cluster: connect with ``ray.init(address=...)``."""

    address: str            # GCS address "127.0.0.1:PORT"
    dashboard_url: str      # http://127.0.0.1:DPORT
    temp_dir: str
    config_path: str
    auth_mode: str
    max_workers: int
    gpus_per_worker: float
    cpus_per_worker: float
    idle_timeout_minutes: float

    def env(self) -> dict[str, str]:
        """Environment a client process needs (address and auth mode)."""
        return {"RAY_ADDRESS": self.address, "RAY_AUTH_MODE": self.auth_mode}


def free_port(low: int = 20000, high: int = 40000) -> int:
    """A TCP port that is free now, outside Ray's default worker range (10002-19999)."""
    import random

    rng = random.Random(os.getpid() ^ int(time.time() * 1e6))
    for _ in range(200):
        port = rng.randint(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


def fake_cluster_config(port: int, *, max_workers: int = 2, gpus_per_worker: float = 1,
                        cpus_per_worker: float = 1, idle_timeout_minutes: float = 0.25,
                        head_cpus: float = 1, cluster_name: str = "raycg-local") -> dict[str, Any]:
    """A complete cluster YAML (every top-level key) for the ``fake_multinode`` provider."""
    return {
        "cluster_name": cluster_name,
        "max_workers": max_workers,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_minutes,
        "docker": {},
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": f"127.0.0.1:{port}",
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": {
            "ray.head.default": {
                "resources": {"CPU": head_cpus},
                "node_config": {},
                "max_workers": 0,
            },
            "ray.worker.gpu": {
                "resources": {"CPU": cpus_per_worker, "GPU": gpus_per_worker},
                "node_config": {},
                "min_workers": 0,
                "max_workers": max_workers,
            },
        },
        "head_node_type": "ray.head.default",
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def validate_cluster_config(config: dict[str, Any] | str | os.PathLike) -> dict[str, Any]:
    """Run Ray's own cluster-config validation (schema + defaults), offline; return the filled config.

    Raises InputError with one line naming the file and the problem.
    """
    from raycg.study.ray_compat import validate_cluster_config as ray_validate

    source = "cluster config"
    if not isinstance(config, dict):
        source = str(config)
        try:
            config = yaml.safe_load(Path(config).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read cluster config: {exc}", where=source) from None
    try:
        # The pip wheel lacks the fake provider's defaults file, so such a config must be
        # complete: validate it as it is against Ray's schema.
        prepared = ray_validate(config, complete=config.get("provider", {}).get("type") == "fake_multinode")
    except Exception as exc:  # jsonschema.ValidationError, ValueError, ...
        msg = str(exc).splitlines()[0]
        path = ".".join(str(p) for p in getattr(exc, "absolute_path", []) or [])
        raise InputError(f"{path + ': ' if path else ''}{msg}", where=source,
                         hint="see cluster.yaml comments and Ray's cluster YAML reference") from None
    return prepared


def _processes_under(temp_dir: str) -> list[int]:
    """PIDs of processes whose command line mentions ``temp_dir`` (our Ray's processes)."""
    import psutil

    me = os.getpid()
    out = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            env = proc.info.get("environ") or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if proc.info["pid"] == me:
            continue
        if temp_dir in cmd or env.get("RAYCG_LOCAL_CLUSTER_DIR") == temp_dir:
            out.append(proc.info["pid"])
    return out


def start_local_cluster(temp_dir: str | os.PathLike, *, max_workers: int = 2, gpus_per_worker: float = 1,
                        cpus_per_worker: float = 1, idle_timeout_minutes: float = 0.25, head_cpus: float = 1,
                        port: int | None = None, dashboard_port: int | None = None,
                        auth_mode: str = "disabled", include_dashboard: bool = True,
                        timeout_s: float = 90.0) -> LocalCluster:
    """Start a head with the autoscaler and the fake multi-node provider; return how to reach it."""
    temp_dir = str(Path(temp_dir).resolve())
    Path(temp_dir).mkdir(parents=True, exist_ok=True)
    if Path(temp_dir, STATE_FILE).exists():
        raise InputError(f"a local cluster is already recorded in {temp_dir}",
                         hint="run 'raycg cluster local down --temp-dir ...' first")
    if auth_mode not in ("disabled", "token"):
        raise InputError(f"auth mode must be 'disabled' or 'token', got {auth_mode!r}")
    port = port or free_port()
    dashboard_port = dashboard_port or free_port()
    cfg = fake_cluster_config(port, max_workers=max_workers, gpus_per_worker=gpus_per_worker,
                              cpus_per_worker=cpus_per_worker, idle_timeout_minutes=idle_timeout_minutes,
                              head_cpus=head_cpus)
    cfg_path = Path(temp_dir, "autoscaling.yaml")
    atomic_write_text(cfg_path, yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ)
    env.update({
        "RAY_FAKE_CLUSTER": "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "RAY_AUTH_MODE": auth_mode,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAYCG_LOCAL_CLUSTER_DIR": temp_dir,
    })
    ray_bin = str(Path(sys.executable).with_name("ray"))
    cmd = [
        ray_bin, "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}",
        f"--autoscaling-config={cfg_path}", f"--num-cpus={head_cpus}", "--num-gpus=0",
        "--node-ip-address=127.0.0.1", f"--dashboard-port={dashboard_port}", "--dashboard-host=127.0.0.1",
        f"--include-dashboard={'true' if include_dashboard else 'false'}",
        f"--ray-client-server-port={free_port()}", f"--min-worker-port={free_port(41000, 45000)}",
        f"--max-worker-port={free_port(46000, 50000)}", "--disable-usage-stats",
        f"--metrics-export-port={free_port()}", f"--object-store-memory={100 * 1024**2}",
        # own agent ports: the defaults (52365 ...) are taken by any other Ray on this machine, and
        # without its agent the head accepts no `ray job submit` ("No available agent")
        f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        stop_local_cluster(temp_dir, missing_ok=True)
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"ray start failed: {tail[0]}")
    info = LocalCluster(address=f"127.0.0.1:{port}", dashboard_url=f"http://127.0.0.1:{dashboard_port}",
                        temp_dir=temp_dir, config_path=str(cfg_path), auth_mode=auth_mode,
                        max_workers=max_workers, gpus_per_worker=gpus_per_worker,
                        cpus_per_worker=cpus_per_worker, idle_timeout_minutes=idle_timeout_minutes)
    atomic_write_json(Path(temp_dir, STATE_FILE), asdict(info))
    return info


def read_local_cluster(temp_dir: str | os.PathLike) -> LocalCluster:
    path = Path(temp_dir).resolve() / STATE_FILE
    if not path.is_file():
        raise InputError(f"no local cluster recorded in {Path(temp_dir).resolve()}",
                         hint="start one with 'raycg cluster local up --temp-dir DIR'")
    return LocalCluster(**json.loads(path.read_text()))


def stop_local_cluster(temp_dir: str | os.PathLike, *, missing_ok: bool = False, grace_s: float = 5.0) -> int:
    """End every process of the local cluster in ``temp_dir`` (by PID); return how many were ended."""
    import psutil

    temp_dir = str(Path(temp_dir).resolve())
    state = Path(temp_dir, STATE_FILE)
    if not state.exists() and not missing_ok:
        raise InputError(f"no local cluster recorded in {temp_dir}")
    pids = _processes_under(temp_dir)
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            p.send_signal(signal.SIGTERM)
            procs.append(p)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_s)
    if state.exists():
        state.unlink()
    return len(procs)


def cluster_nodes(address: str, auth_mode: str = "disabled") -> list[dict[str, Any]]:
    """Alive nodes at ``address`` (NodeID, Resources, Alive, MetricsExportPort, NodeManagerHostname), via a subprocess."""
    code = (
        f"import json, ray; ray.init(address={address!r}, logging_level='ERROR', log_to_driver=False);"
        "print(json.dumps([{'NodeID': n['NodeID'], 'Alive': n['Alive'], 'Resources': n['Resources'],"
        " 'MetricsExportPort': n.get('MetricsExportPort'), 'NodeManagerHostname': n.get('NodeManagerHostname')}"
        " for n in ray.nodes() if n['Alive']]))"
    )
    env = dict(os.environ, RAY_AUTH_MODE=auth_mode, RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "ray.nodes failed")
    return json.loads(out.stdout.strip().splitlines()[-1])
