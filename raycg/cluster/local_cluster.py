"""A fake multi-node Ray cluster with a real autoscaler on one machine.

(Over 300 lines for one reason: start, wait for, describe and stop one cluster share its config file
and process bookkeeping; splitting them would pass that state between modules.)

``start_local_cluster`` starts a Ray head with the autoscaler and a fake multi-node provider
(:mod:`raycg.cluster.fake_provider`): when trials ask for GPUs the autoscaler "launches" fake GPU
worker nodes (real raylets on this machine advertising ``GPU: 1``) and removes them after the idle
timeout; a fake node whose processes died is forgotten by the provider so the autoscaler replaces
it (Ray's own fake provider keeps counting a dead node forever).

Everything runs under its own ``--temp-dir``, ports and Unix session: ``ray start`` is launched
with ``start_new_session=True`` and the session id (read back from the head's processes) is
recorded in ``raycg_local_cluster.json``, so ``stop_local_cluster`` finds every process of the cluster
(head daemons, fake nodes, their agents and workers, which rename themselves and ignore SIGTERM) by that
session, ends them by PID
(SIGTERM, then SIGKILL after a grace period) and never touches its own ancestors or another Ray.
Ray Client (``ray://``) is off: ``ray start --head`` always starts its server, bound to the
machine's network address whatever ``--node-ip-address`` says (Ray swaps 127.0.0.1 for it), and
raycg never uses it (drivers join by the GCS address, jobs go through the dashboard on 127.0.0.1),
so it is ended right after start-up.
"""

from __future__ import annotations

import json
import os
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
#: the fake provider that replaces lost nodes (see raycg.cluster.fake_provider)
PROVIDER_MODULE = "raycg.cluster.fake_provider.RaycgFakeMultiNodeProvider"


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
    session_id: int = 0         # Unix session of every process of the cluster (0: not recorded)
    started_unix: float = 0.0

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
                        head_cpus: float = 1, cluster_name: str = "raycg-local",
                        provider_module: str | None = None) -> dict[str, Any]:
    """A complete cluster YAML (every top-level key) for the ``fake_multinode`` provider.

    ``provider_module``: a ``module.Class`` subclassing Ray's fake provider, loaded as an
    ``external`` provider (``start_local_cluster`` uses :data:`PROVIDER_MODULE`).
    """
    provider: dict[str, Any] = {"type": "fake_multinode"}
    if provider_module:
        provider = {"type": "external", "module": provider_module}
    return {
        "cluster_name": cluster_name,
        "max_workers": max_workers,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_minutes,
        "docker": {},
        "provider": {
            **provider,
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
    from raycg.ray_compat import validate_cluster_config as ray_validate

    source = "cluster config"
    if not isinstance(config, dict):
        source = str(config)
        from raycg.config import load_yaml_text

        config, _ = load_yaml_text(config)   # guarded: encoding, depth, aliases, duplicate keys
    try:
        # The pip wheel lacks the fake provider's defaults file, so such a config must be
        # complete: validate it as it is against Ray's schema.
        prepared = ray_validate(config, complete=_is_fake(config.get("provider", {})))
    except Exception as exc:  # jsonschema.ValidationError, ValueError, ...
        msg = str(exc).splitlines()[0]
        path = ".".join(str(p) for p in getattr(exc, "absolute_path", []) or [])
        raise InputError(f"{path + ': ' if path else ''}{msg}", where=source,
                         hint="see cluster.yaml comments and Ray's cluster YAML reference") from None
    return prepared


def _is_fake(provider: dict[str, Any]) -> bool:
    return provider.get("type") == "fake_multinode" or provider.get("module") == PROVIDER_MODULE


def cluster_processes(temp_dir: str | os.PathLike, info: LocalCluster | None = None) -> list:
    """Live processes of the local cluster in ``temp_dir`` (psutil.Process), never this one or its ancestors.

    Found by the recorded session id (every process the cluster started, renamed agents included),
    plus anything naming the temp dir and the descendants of all those (clusters started before
    session ids were recorded, or a process that left the session).
    """
    from raycg.cluster import processes

    temp_dir = str(Path(temp_dir).resolve())
    found = {p.pid: p for p in processes.processes_naming(temp_dir)}
    sid = info.session_id if info is not None and info.session_id else _session_of(temp_dir)
    if sid:
        since = info.started_unix if info is not None else 0.0
        found.update({p.pid: p for p in processes.session_processes(sid, started_after=since)})
    found.update({p.pid: p for p in processes.descendants(list(found))})
    skip = processes.protected_pids()
    return [p for pid, p in sorted(found.items()) if pid not in skip]


def start_local_cluster(temp_dir: str | os.PathLike, *, max_workers: int = 2, gpus_per_worker: float = 1,
                        cpus_per_worker: float = 1, idle_timeout_minutes: float = 0.25, head_cpus: int = 1,
                        port: int | None = None, dashboard_port: int | None = None,
                        auth_mode: str = "disabled", include_dashboard: bool = True,
                        timeout_s: float = 90.0) -> LocalCluster:
    """Start a head with the autoscaler and the fake multi-node provider; return how to reach it.

    Refuses (InputError) a Ray older than :data:`raycg.ray_compat.MIN_RAY` before starting anything.
    """
    from raycg.ray_compat import require_min_ray

    require_min_ray()
    temp_dir = str(Path(temp_dir).resolve())
    Path(temp_dir).mkdir(parents=True, exist_ok=True)
    if Path(temp_dir, STATE_FILE).exists():
        raise InputError(f"a local cluster is already recorded in {temp_dir}",
                         hint="run 'raycg cluster local down --temp-dir ...' first")
    if auth_mode not in ("disabled", "token"):
        raise InputError(f"auth mode must be 'disabled' or 'token', got {auth_mode!r}")
    head_cpus = _whole(head_cpus, "head CPUs")  # `ray start --num-cpus=1.0` is refused
    port = port or free_port()
    dashboard_port = dashboard_port or free_port()
    cfg = fake_cluster_config(port, max_workers=max_workers, gpus_per_worker=gpus_per_worker,
                              cpus_per_worker=cpus_per_worker, idle_timeout_minutes=idle_timeout_minutes,
                              head_cpus=head_cpus, provider_module=PROVIDER_MODULE)
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
    started = time.time()
    try:  # its own session: every process it starts (and they start) keeps that session id
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, start_new_session=True)
        failed = None if proc.returncode == 0 else (proc.stderr or proc.stdout or "")
    except subprocess.TimeoutExpired:
        failed = f"ray start did not finish in {timeout_s:g} s"
    if failed is not None:
        stop_local_cluster(temp_dir, missing_ok=True)
        tail = failed.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"ray start failed: {tail[0]}")
    info = LocalCluster(address=f"127.0.0.1:{port}", dashboard_url=f"http://127.0.0.1:{dashboard_port}",
                        temp_dir=temp_dir, config_path=str(cfg_path), auth_mode=auth_mode,
                        max_workers=max_workers, gpus_per_worker=gpus_per_worker,
                        cpus_per_worker=cpus_per_worker, idle_timeout_minutes=idle_timeout_minutes,
                        session_id=_session_of(temp_dir), started_unix=started)
    atomic_write_json(Path(temp_dir, STATE_FILE), asdict(info))
    _end_client_server(temp_dir, info)
    return info


def _session_of(temp_dir: str) -> int:
    """The Unix session of the processes naming ``temp_dir`` (the head's daemons); 0 if none (or ours)."""
    from raycg.cluster.processes import processes_naming

    own = {os.getsid(0)}
    for p in processes_naming(temp_dir):
        try:
            sid = os.getsid(p.pid)
        except OSError:
            continue
        if sid not in own:
            return sid
    return 0


def _whole(value: float, what: str) -> int:
    if float(value) != int(value) or value < 0:
        raise InputError(f"{what} must be a whole number >= 0, got {value!r}")
    return int(value)


def _end_client_server(temp_dir: str, info: LocalCluster) -> None:
    """End the Ray Client server (it listens on the machine's address; nothing here uses it)."""
    from raycg.cluster.processes import end_processes

    def is_client_server(p) -> bool:
        try:
            return "ray.util.client.server" in " ".join(p.cmdline())
        except Exception:  # noqa: BLE001 - a process that ended meanwhile
            return False

    end_processes([p for p in cluster_processes(temp_dir, info) if is_client_server(p)], grace_s=2.0)


def read_local_cluster(temp_dir: str | os.PathLike) -> LocalCluster:
    path = Path(temp_dir).resolve() / STATE_FILE
    if not path.is_file():
        raise InputError(f"no local cluster recorded in {Path(temp_dir).resolve()}",
                         hint="start one with 'raycg cluster local up --temp-dir DIR'")
    return LocalCluster(**json.loads(path.read_text()))


def stop_local_cluster(temp_dir: str | os.PathLike, *, missing_ok: bool = False, grace_s: float = 5.0) -> int:
    """End every process of the local cluster in ``temp_dir`` (by PID); return how many were ended.

    SIGTERM, then SIGKILL after ``grace_s`` (Ray's agents ignore SIGTERM); a second sweep catches
    workers that were being started during the first. Never this process or its ancestors.
    """
    from raycg.cluster.processes import end_processes

    temp_dir = str(Path(temp_dir).resolve())
    state = Path(temp_dir, STATE_FILE)
    if not state.exists() and not missing_ok:
        raise InputError(f"no local cluster recorded in {temp_dir}",
                         hint="give the --temp-dir the cluster was started with")
    info = None
    try:
        info = read_local_cluster(temp_dir)
    except (InputError, OSError, ValueError, TypeError):
        pass
    ended = end_processes(cluster_processes(temp_dir, info), grace_s=grace_s)
    ended += end_processes(cluster_processes(temp_dir, info), grace_s=grace_s)
    if state.exists():
        state.unlink()
    return len({r.pid for r in ended})


def cluster_nodes(address: str, auth_mode: str = "disabled") -> list[dict[str, Any]]:
    """Alive nodes at ``address`` (NodeID, Resources, Alive, MetricsExportPort, NodeManagerHostname), via a subprocess.

    Read from the GCS without connecting a driver (:func:`raycg.ray_compat.node_table`): on Ray 2.52 a
    driver's start resets every node's idle time, so polling with ``ray.init`` would keep idle workers up.
    """
    code = (
        f"import json; from raycg.ray_compat import node_table; nodes = node_table({address!r});"
        "print(json.dumps([{'NodeID': n['NodeID'], 'Alive': n['Alive'], 'Resources': n['Resources'],"
        " 'MetricsExportPort': n.get('MetricsExportPort'), 'NodeManagerHostname': n.get('NodeManagerHostname')}"
        " for n in nodes if n['Alive']]))"
    )
    env = dict(os.environ, RAY_AUTH_MODE=auth_mode, RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "ray.nodes failed")
    return json.loads(out.stdout.strip().splitlines()[-1])
