"""Checks against the Ray cluster before a study starts: one clear line instead of a hang.

Two misconfigurations otherwise show up late or never:

- **Storage not shared.** Several machines but ``storage`` is a local directory that is not on a
  network filesystem: trials on the other machines cannot write their results (Ray Tune fails
  with "Unable to set up cluster storage", or worse, results land on a worker's disk).
- **Resources that no node can ever offer.** A trial asks for a GPU (or more CPUs, or a custom
  resource) that no node has, and no autoscaler can add one: Tune would wait forever with the
  trials PENDING.

:func:`cluster_snapshot` reads what is needed (alive nodes with their host names and resources,
whether an autoscaler runs, the autoscaler's maximum resources where Ray publishes them);
:func:`check_cluster` is a pure function of the spec and a snapshot, so it is testable without a
cluster. :func:`preflight` does both; the runner calls it right after validating the spec, before
anything is written or started.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raycg import ray_compat
from raycg.errors import ConfigError
from raycg.study.storage import is_remote, normalize

#: filesystem types that are shared between machines (``/proc/mounts`` names)
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "cephfs",
              "glusterfs", "fuse.glusterfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.mountpoint-s3", "fuse.sshfs",
              "fuse.juicefs", "fuse.ceph", "efs", "9p", "virtiofs", "fuse.efs", "panfs", "wekafs", "orangefs")


@dataclass
class ClusterSnapshot:
    """What the checks need to know about a Ray cluster."""

    nodes: list[dict[str, Any]]                 # alive nodes: {"host": str, "resources": {name: amount}}
    autoscaler: bool = False                    # an autoscaler runs and may add nodes
    max_resources: dict[str, float] | None = None  # most the autoscaler can provide, if Ray publishes it
    where: str = "local Ray"                    # for messages
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return sorted({n["host"] for n in self.nodes})


# --- the checks (pure) ----------------------------------------------------------------------------
def trial_request(spec) -> dict[str, float]:
    """Ray resources one trial asks for (Ray's names: CPU, GPU, custom)."""
    return spec.resources.ray_request()


def _fmt(res: dict[str, float]) -> str:
    keys = [k for k in ("CPU", "GPU") if k in res] + sorted(k for k in res if k not in ("CPU", "GPU")
                                                           and not k.startswith(("node:", "memory", "object_store")))
    return ", ".join(f"{res[k]:g} {k}" for k in keys) or "nothing"


def _field_of(resource: str) -> str:
    return {"CPU": "resources.cpus", "GPU": "resources.gpu"}.get(resource, f"resources.extra.{resource}")


def check_cluster(spec, snap: ClusterSnapshot, *, source: str = "spec", log=None) -> None:
    """Raise ConfigError (one line) when the study cannot run on this cluster; warn where unsure."""
    _check_storage(spec, snap, source=source, log=log)
    _check_resources(spec, snap, source=source, log=log)


def _check_resources(spec, snap: ClusterSnapshot, *, source: str, log) -> None:
    req = trial_request(spec)
    if not snap.nodes:
        return
    if any(all(n["resources"].get(k, 0.0) + 1e-9 >= v for k, v in req.items()) for n in snap.nodes):
        return
    # no alive node can run one trial: which resource is missing?
    best = max(snap.nodes, key=lambda n: sum(n["resources"].get(k, 0.0) >= v for k, v in req.items()))
    missing = next(k for k, v in req.items() if best["resources"].get(k, 0.0) + 1e-9 < v)
    if snap.max_resources is not None:
        if all(snap.max_resources.get(k, 0.0) + 1e-9 >= v for k, v in req.items()):
            return
        raise ConfigError(f"{source}: {_field_of(missing)}: each trial asks for {req[missing]:g} {missing} but no "
                          f"node of {snap.where} has it and its autoscaler can provide at most "
                          f"{snap.max_resources.get(missing, 0.0):g}",
                          hint=_hint(missing))
    if snap.autoscaler:
        if log:
            log(f"preflight: no node has {_fmt(req)} for one trial yet; relying on the autoscaler to add one")
        return
    largest = max(snap.nodes, key=lambda n: n["resources"].get(missing, 0.0))
    raise ConfigError(f"{source}: {_field_of(missing)}: each trial asks for {req[missing]:g} {missing} but no node of "
                      f"{snap.where} has that much (largest: {_fmt(largest['resources'])}; {len(snap.nodes)} "
                      f"node(s)) and no autoscaler can add one, so the trials would wait forever",
                      hint=_hint(missing))


def _hint(resource: str) -> str:
    if resource == "GPU":
        return "set resources.gpu: 0 to run on CPU, or join a GPU cluster with --address"
    if resource == "CPU":
        return "lower resources.cpus, or join a larger cluster with --address"
    return f"remove resources.extra.{resource}, or start nodes that offer it"


def _check_storage(spec, snap: ClusterSnapshot, *, source: str, log) -> None:
    storage = str(spec.storage)
    if is_remote(storage):
        return
    path = normalize(storage)
    fs = filesystem_type(path)
    if fs in NETWORK_FS:
        return
    hosts = snap.hosts
    if len(hosts) > 1:
        shown = ", ".join(hosts[:3]) + (", ..." if len(hosts) > 3 else "")
        raise ConfigError(f"{source}: storage: {path} is a local directory ({fs or 'local'} filesystem) but "
                          f"{snap.where} has nodes on {len(hosts)} machines ({shown}); trials on the other "
                          f"machines could not write their results there",
                          hint="give a shared path (NFS/EFS mount) or s3://bucket/prefix with --storage")
    if snap.autoscaler and log:
        log(f"preflight: storage {path} is a local directory; nodes the autoscaler adds on other machines "
            "cannot reach it (use a shared path or s3:// on a real cluster)")


def filesystem_type(path: str) -> str | None:
    """The ``/proc/mounts`` type of the filesystem holding ``path`` (None where unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    real = str(p.resolve())
    best, best_len = None, -1
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/") or mnt == "/") and len(mnt) > best_len:
            best, best_len = parts[2], len(mnt)
    return best


# --- gathering --------------------------------------------------------------------------------------
_SNAPSHOT_CODE = r"""
import json, ray
ray.init(address=ADDRESS, logging_level="ERROR", log_to_driver=False)
from raycg.study.preflight import _snapshot_from_ray
print("RAYCG_SNAPSHOT " + json.dumps(_snapshot_from_ray(ADDRESS).__dict__))
"""


def has_autoscaler(status: dict[str, Any]) -> bool:
    """Whether the autoscaler status (GCS key ``__autoscaling_status``) comes from one that can add nodes.

    Every Ray head runs a monitor; without an autoscaling config it uses the read-only provider,
    whose node types are just ``node_<node id>`` of the nodes that exist: it never adds any.
    """
    report = status.get("autoscaler_report") or {}
    if not report:
        return False
    mapping = report.get("node_type_mapping") or {}
    return not (mapping and all(t == f"node_{nid}" for nid, t in mapping.items()))


def _snapshot_from_ray(where: str = "the Ray cluster") -> ClusterSnapshot:
    """Snapshot of the cluster this process is connected to (``ray.init`` done)."""
    import ray

    nodes = [{"host": n.get("NodeManagerHostname") or n.get("NodeManagerAddress") or "?",
              "resources": {k: float(v) for k, v in (n.get("Resources") or {}).items()
                            if not k.startswith("node:")}}
             for n in ray.nodes() if n.get("Alive")]
    status = ray_compat.autoscaling_status()
    autoscaler = has_autoscaler(status) if status else False
    max_res = ray_compat.autoscaler_max_resources()  # autoscaler v2 / KubeRay
    if max_res is not None:
        autoscaler = True
    return ClusterSnapshot(nodes=nodes, autoscaler=autoscaler, max_resources=max_res, where=f"the cluster at {where}"
                           if where != "the Ray cluster" else where)


def _local_snapshot() -> ClusterSnapshot:
    """The local Ray that the runner would start: this machine, its CPUs and GPUs, no autoscaler."""
    cpus = float(os.environ.get("RAYCG_RAY_NUM_CPUS") or os.cpu_count() or 1)
    gpus = ray_compat.local_gpu_count()
    res = {"CPU": cpus}
    if gpus:
        res["GPU"] = gpus
    return ClusterSnapshot(nodes=[{"host": socket.gethostname(), "resources": res}],
                           where="the local Ray (this machine)")


#: seconds to wait for a TCP answer from ``--address`` before refusing it (RAYCG_CONNECT_TIMEOUT_S)
CONNECT_TIMEOUT_S = 10.0
#: seconds for Ray to connect and describe the cluster once the port answers (RAYCG_CLUSTER_TIMEOUT_S)
CLUSTER_TIMEOUT_S = 60.0


def probe_address(addr: str, timeout_s: float | None = None) -> None:
    """ConfigError (one line) unless something accepts a TCP connection at ``addr`` within ``timeout_s``.

    ``host:port`` and ``ray://host:port`` are probed; ``auto`` and other forms are left to Ray.
    """
    timeout_s = float(os.environ.get("RAYCG_CONNECT_TIMEOUT_S", CONNECT_TIMEOUT_S)) if timeout_s is None \
        else timeout_s
    hostport = addr.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        why = f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else \
            (exc.strerror or str(exc)).lower()
        raise ConfigError(f"--address {addr}: {why}",
                          hint="check that the Ray head is up and the port is open (`ray status` on the "
                               "head), or leave out --address / RAY_ADDRESS to run on a local Ray") from None


def cluster_snapshot(address: str | None = None, *, timeout_s: float | None = None) -> ClusterSnapshot:
    """Snapshot of the cluster a study would run on (connected Ray, ``address``/RAY_ADDRESS, or local)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return _snapshot_from_ray()
    addr = address or os.environ.get("RAY_ADDRESS")
    if not addr or addr == "local":
        return _local_snapshot()
    probe_address(addr)
    if timeout_s is None:
        timeout_s = float(os.environ.get("RAYCG_CLUSTER_TIMEOUT_S", CLUSTER_TIMEOUT_S))
    code = _SNAPSHOT_CODE.replace("ADDRESS", repr(addr))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"cannot reach the Ray cluster at {addr} (no answer within {timeout_s:.0f} s)",
                          hint="check --address / RAY_ADDRESS, RAY_AUTH_MODE and that the head is up") from None
    line = next((ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("RAYCG_SNAPSHOT ")), None)
    if out.returncode != 0 or line is None:
        err = next((ln for ln in reversed(out.stderr.strip().splitlines()) if ln.strip()), "no output")
        raise ConfigError(f"cannot connect to the Ray cluster at {addr}: {err[:300]}",
                          hint="check --address / RAY_ADDRESS, RAY_AUTH_MODE and that the head is up")
    return ClusterSnapshot(**json.loads(line[len("RAYCG_SNAPSHOT "):]))


def preflight(spec, *, address: str | None = None, source: str = "spec", log=None,
              snapshot: ClusterSnapshot | None = None) -> ClusterSnapshot:
    """Check the spec against the cluster it would run on; raise ConfigError (one line) if it cannot."""
    addr = address or os.environ.get("RAY_ADDRESS")
    if snapshot is None and addr and addr != "local" and log is not None:
        log(f"ray: checking the cluster at {addr} (a port that does not answer is refused after "
            f"{CONNECT_TIMEOUT_S:g} s, a connection that does not complete after {CLUSTER_TIMEOUT_S:g} s)")
    snap = snapshot or cluster_snapshot(address)
    check_cluster(spec, snap, source=source, log=log)
    return snap
