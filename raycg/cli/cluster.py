"""``raycg cluster local up|down|status``: a fake multi-node autoscaling Ray cluster on one machine."""

from __future__ import annotations

import argparse
import json


def _count(text: str) -> int:
    """A whole number >= 0 (``ray start`` takes whole CPUs and GPUs per node)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of minutes > 0, got {text!r}")
    return value


def register(groups: dict) -> None:
    p_local = groups["cluster"].add_parser(
        "local", help="fake multi-node cluster with a real autoscaler on this machine",
        description="Start/stop a Ray head with the autoscaler and fake GPU worker nodes on this machine. "
                    "It uses its own temp dir and ports and is stopped by PID (never Ray's global stop command, "
                    "which would end other users' Ray).",
    )
    sub = p_local.add_subparsers(dest="local_command", metavar="ACTION")
    p_local.set_defaults(_group_parser=p_local)

    up = sub.add_parser("up", help="start the head + autoscaler", description="Start the local fake cluster.")
    up.add_argument("--temp-dir", required=True, help="directory for this cluster's Ray session files")
    up.add_argument("--max-workers", type=_count, default=2, help="most fake GPU workers (default 2)")
    up.add_argument("--gpus-per-worker", type=_count, default=1, help="whole GPUs of each fake worker (default 1)")
    up.add_argument("--cpus-per-worker", type=_count, default=1, help="whole CPUs of each fake worker (default 1)")
    up.add_argument("--head-cpus", type=_count, default=1, help="whole CPUs of the head (0: head runs no trials)")
    up.add_argument("--idle-timeout-minutes", type=_minutes, default=1.0, help="idle workers are removed after this")
    up.add_argument("--port", type=_count, default=None, help="GCS port (default: a free port)")
    up.add_argument("--dashboard-port", type=_count, default=None)
    up.add_argument("--auth", choices=["disabled", "token"], default="disabled", help="Ray auth mode")
    up.set_defaults(handler=_up)

    down = sub.add_parser("down", help="stop the cluster's processes by PID",
                          description="Stop the local fake cluster.")
    down.add_argument("--temp-dir", required=True)
    down.set_defaults(handler=_down)

    st = sub.add_parser("status", help="list the cluster's alive nodes", description="Show the local cluster's nodes.")
    st.add_argument("--temp-dir", required=True)
    st.set_defaults(handler=_status)


def _up(args: argparse.Namespace) -> int:
    import sys

    from raycg.cluster.local_cluster import start_local_cluster

    try:
        c = start_local_cluster(args.temp_dir, max_workers=args.max_workers, gpus_per_worker=args.gpus_per_worker,
                                cpus_per_worker=args.cpus_per_worker, idle_timeout_minutes=args.idle_timeout_minutes,
                                head_cpus=args.head_cpus, port=args.port, dashboard_port=args.dashboard_port,
                                auth_mode=args.auth)
    except RuntimeError as exc:  # `ray start` refused (ports, resources): not the user's input, exit 1
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1
    print(f"local cluster up: address {c.address}, dashboard {c.dashboard_url}")
    print(f"  export RAY_ADDRESS={c.address} RAY_AUTH_MODE={c.auth_mode}")
    print("  then: raycg study run studies/quickstart.yaml --address $RAY_ADDRESS")
    print(f"  stop with: raycg cluster local down --temp-dir {c.temp_dir}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from raycg.cluster.local_cluster import stop_local_cluster

    n = stop_local_cluster(args.temp_dir)
    print(f"local cluster down: ended {n} process(es)")
    return 0


def _status(args: argparse.Namespace) -> int:
    from raycg.cluster.local_cluster import cluster_nodes, read_local_cluster

    c = read_local_cluster(args.temp_dir)
    nodes = cluster_nodes(c.address, c.auth_mode)
    print(json.dumps({"address": c.address, "dashboard": c.dashboard_url, "nodes": nodes}, indent=2))
    return 0
