"""The one-machine cluster's node provider: Ray's fake multi-node provider that notices lost nodes.

Ray's ``FakeMultiNodeProvider`` keeps a node in its table until the autoscaler terminates it, and
the autoscaler never does once the node's processes are gone: it prunes the dead node from its
heartbeat table, then fakes a fresh heartbeat for it ("it has not had the chance to produce one"),
so the node counts as healthy forever. A study whose only worker died then waits for a node that
will never come back ("0 running, 3 pending").

This subclass checks, every time the autoscaler lists nodes (each update, ~1 s), whether each fake
worker's raylet process is still running. A node whose raylet exited (the node was killed, OOM,
crashed) is removed from the table and its remaining processes are ended, so the autoscaler sees
the missing capacity and launches a replacement while trials still ask for it; Tune retries the
lost trial from its last checkpoint there. It also remembers each raylet's children (agents,
workers): Ray's node shutdown ends only the raylet and the log monitor, and the agents of a node
whose raylet is gone never exit by themselves, so they are ended here, when a node is lost or
terminated (idle timeout). Loaded by the autoscaler as an ``external`` provider
(``provider.module`` in the cluster YAML written by :mod:`raycg.cluster.local_cluster`).

Uses Ray's non-public fake provider (listed in :mod:`raycg.ray_compat`).
"""

from __future__ import annotations

import logging
from typing import Any

import psutil
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider
from ray.autoscaler.tags import TAG_RAY_NODE_NAME

from raycg.cluster.processes import ProcRef, end_processes

logger = logging.getLogger(__name__)


def raylet_alive(node: Any) -> bool:
    """Whether a ``ray._private.node.Node``'s raylet process is still running."""
    procs = getattr(node, "all_processes", {}) or {}
    raylets = procs.get("raylet") or []
    if not raylets:
        return True  # not started by this provider, or no handle: nothing to judge
    return all(info.process.poll() is None for info in raylets)


class RaycgFakeMultiNodeProvider(FakeMultiNodeProvider):
    """Fake multi-node provider that forgets (and cleans up) worker nodes whose raylet died."""

    def __init__(self, provider_config, cluster_name):
        super().__init__(provider_config, cluster_name)
        self._children: dict[str, dict[int, ProcRef]] = {}  # node id -> its raylet's descendants

    def non_terminated_nodes(self, tag_filters):
        self.forget_lost_nodes()
        return super().non_terminated_nodes(tag_filters)

    def forget_lost_nodes(self) -> list[str]:
        """Drop the table entries of fake nodes whose raylet exited (ending what is left); return their ids."""
        lost = []
        with self.lock:
            for node_id, entry in list(self._nodes.items()):
                node = entry.get("node")
                if node is None:
                    continue
                if raylet_alive(node):
                    self._remember_children(node_id, node)
                    continue
                self._nodes.pop(node_id, None)
                lost.append(node_id)
                self._end_node(node_id, node)
                logger.warning("raycg: fake node %s lost (its raylet exited); removed so that the autoscaler "
                               "can replace it", node_id)
        return lost

    def _terminate_node(self, node):
        """The autoscaler ends a node (idle timeout): Ray's shutdown, then the raylet's orphans."""
        super()._terminate_node(node)
        node_id = node.get("tags", {}).get(TAG_RAY_NODE_NAME)
        end_processes(self._children.pop(node_id, {}).values(), grace_s=0.5)

    def _remember_children(self, node_id: str, node: Any) -> None:
        known = self._children.setdefault(node_id, {})
        for info in (getattr(node, "all_processes", {}) or {}).get("raylet") or []:
            try:
                for child in psutil.Process(info.process.pid).children(recursive=True):
                    known.setdefault(child.pid, ProcRef.of(child))
            except psutil.Error:
                continue

    def _end_node(self, node_id: str, node: Any) -> None:
        try:  # the node's own processes (log monitor, ...), then its raylet's orphans (agents, workers)
            node.kill_all_processes(check_alive=False, allow_graceful=False)
        except Exception:  # noqa: BLE001 - cleaning up a dead node must not stop the autoscaler
            logger.exception("raycg: cleaning up lost fake node %s", node_id)
        end_processes(self._children.pop(node_id, {}).values(), grace_s=0.5)
