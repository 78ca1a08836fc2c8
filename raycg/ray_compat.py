"""Every use of Ray's non-public API, in one place, checked against the installed Ray.

raycg is tested with the Ray versions in :data:`TESTED` (``pyproject.toml`` pins the same range).
Each function here wraps one private attribute; if a Ray release moves it, the function raises
:class:`RayAPIChanged` naming what changed instead of a study silently losing a feature, and
``tests/study/test_ray_compat.py`` fails on that Ray (run it before widening the pin).

Uses, and why there is no public way:

- ``Tuner._local_tuner._run_config``: ``Tuner.restore`` drops the run's callbacks (they are not
  part of the saved state) and takes no new ones; a resumed HPO search re-attaches its progress
  printer here (grid studies never restore a Tuner: each run builds a fresh one).
- ``OptunaSearch._ot_trials`` / ``_completed_trials``: OptunaSearch records an intermediate value
  only for the metric it optimises; the search reports the per-epoch validation loss so that
  Optuna knows how far ASHA-stopped trials got.
- ``ray._private.state.state.get_max_resources_from_cluster_config``: the most an autoscaler can
  add (preflight: a GPU request no node will ever offer). New in Ray 2.46 (absent from the 2.41,
  2.42 and 2.45 wheels, present in 2.46-2.48 and 2.60); older Rays give no limits (None).
- ``ray.experimental.internal_kv._internal_kv_get("__autoscaling_status")``: whether an autoscaler
  that can add nodes runs at all.
- ``ray._private.accelerators.NvidiaGPUAcceleratorManager``: GPUs a local Ray would see, before
  starting it.
- ``ray._private.ray_constants.ENABLE_RAY_CLUSTER``: the flag behind Ray's public
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (a local node on the loopback interface), read when Ray is
  imported; a local Ray that raycg starts listens on 127.0.0.1 only (``ray.init`` turns a
  ``_node_ip_address`` of 127.0.0.1 into the machine's address, and its servers bind all interfaces).
- ``ray.autoscaler._private.util.prepare_config/validate_config``: offline validation of a cluster
  YAML against Ray's schema (what ``ray up`` does first).
- ``ray._private.state.GlobalState`` with ``ray._private.services._get_gcs_client_options``: the
  node table straight from the GCS, without ``ray.init``. Every job that starts (every driver that
  connects) resets each node's idle time on Ray 2.52 (not on 2.60), so a status poll that connects
  a driver would keep the autoscaler from ever removing an idle worker.
- ``ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider`` (its ``_nodes``
  table, ``lock``, ``_terminate_node`` and the ``Node`` handles in it): subclassed by
  ``raycg.cluster.fake_provider`` so the one-machine cluster replaces a lost node.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

#: oldest and newest Ray release raycg is tested with (inclusive, major.minor); the oldest is also the
#: oldest raycg runs on: token authentication (``ray get-auth-token``, ``RAY_AUTH_MODE``) is new in 2.52
TESTED = ((2, 52), (2, 60))
MIN_RAY = TESTED[0]
#: first Ray with ``get_max_resources_from_cluster_config``
MAX_RESOURCES_SINCE = (2, 46)


class RayAPIChanged(RuntimeError):
    """The installed Ray moved a non-public attribute raycg relies on."""


def _changed(what: str, exc: BaseException) -> RayAPIChanged:
    import ray

    lo, hi = (".".join(map(str, v)) for v in TESTED)
    return RayAPIChanged(f"ray {ray.__version__} changed {what} ({type(exc).__name__}: {exc}); raycg is tested "
                         f"with ray {lo}-{hi}: install a ray in that range or update raycg/ray_compat.py")


def ray_version() -> tuple[int, int]:
    import ray

    major, minor = ray.__version__.split(".")[:2]
    return int(major), int(minor)


def is_tested_version() -> bool:
    return TESTED[0] <= ray_version() <= TESTED[1]


def require_min_ray() -> None:
    """Refuse a Ray older than :data:`MIN_RAY` (InputError, one line: the CLI exits 2)."""
    if ray_version() < MIN_RAY:
        import ray

        from raycg.errors import InputError

        lo, hi = (".".join(map(str, v)) for v in TESTED)
        raise InputError(f"ray {ray.__version__} is older than {lo}, the oldest raycg runs on",
                         hint=f"install a ray in the tested range: pip install 'ray[tune,default]>={lo},<={hi}'")


def attach_callbacks(tuner: Any, callbacks: list, *, verbose: int = 0) -> None:
    """Give a restored ``Tuner`` the run callbacks (and verbosity) that ``Tuner.restore`` drops."""
    try:
        run_config = tuner._local_tuner._run_config
        run_config.callbacks = list(callbacks)
        run_config.verbose = verbose
    except AttributeError as exc:
        raise _changed("Tuner._local_tuner._run_config", exc) from None


def optuna_trial(searcher: Any, trial_id: str) -> Any | None:
    """The Optuna trial behind a running Tune trial of an ``OptunaSearch`` (None once it completed)."""
    try:
        completed, trials = searcher._completed_trials, searcher._ot_trials
    except AttributeError as exc:
        raise _changed("OptunaSearch._ot_trials/_completed_trials", exc) from None
    return None if trial_id in completed else trials.get(trial_id)


def autoscaler_max_resources() -> dict[str, float] | None:
    """The most resources the connected cluster's autoscaler can provide (None: Ray does not say)."""
    try:
        from ray._private import state

        getter = state.state.get_max_resources_from_cluster_config
    except (ImportError, AttributeError) as exc:
        if ray_version() < MAX_RESOURCES_SINCE:
            return None
        raise _changed("ray._private.state.state.get_max_resources_from_cluster_config", exc) from None
    res = getter()
    if res is None:
        return None
    return {k: (math.inf if v >= sys.maxsize else float(v)) for k, v in res.items()}


def autoscaling_status() -> dict[str, Any] | None:
    """The autoscaler's status report of the connected cluster (GCS key ``__autoscaling_status``)."""
    try:
        from ray.experimental.internal_kv import _internal_kv_get
    except ImportError as exc:
        raise _changed("ray.experimental.internal_kv._internal_kv_get", exc) from None
    raw = _internal_kv_get("__autoscaling_status")
    return json.loads(raw) if raw else None


def local_gpu_count() -> float:
    """NVIDIA GPUs a Ray started on this machine would see (no Ray needed)."""
    try:
        from ray._private.accelerators import NvidiaGPUAcceleratorManager

        count = NvidiaGPUAcceleratorManager.get_current_node_num_accelerators
    except (ImportError, AttributeError) as exc:
        raise _changed("ray._private.accelerators.NvidiaGPUAcceleratorManager", exc) from None
    return float(count() or 0)


def validate_cluster_config(config: dict[str, Any], *, complete: bool = False) -> dict[str, Any]:
    """Ray's own cluster-YAML validation, offline: defaults filled in unless ``complete``, then the schema.

    Raises what Ray raises for an invalid config (jsonschema.ValidationError, ValueError, ...).
    """
    try:
        from ray.autoscaler._private.util import prepare_config, validate_config
    except ImportError as exc:
        raise _changed("ray.autoscaler._private.util.prepare_config/validate_config", exc) from None
    prepared = dict(config) if complete else prepare_config(dict(config))
    validate_config(prepared)
    return prepared


def node_table(address: str) -> list[dict[str, Any]]:
    """Every node the GCS at ``address`` ("HOST:PORT") knows, as ``ray.nodes()`` gives them, without ``ray.init``.

    Reads the GCS node table directly: no driver connects and no job starts, so the nodes' idle
    times (the autoscaler's scale-down clock) are left alone. The auth mode is this process's.
    """
    try:
        from ray._private.services import _get_gcs_client_options
        from ray._private.state import GlobalState
    except ImportError as exc:
        raise _changed("ray._private.state.GlobalState/services._get_gcs_client_options", exc) from None
    state = GlobalState()
    state._initialize_global_state(_get_gcs_client_options(address))
    try:
        return state.node_table()
    finally:
        state.disconnect()


#: Ray's switch for a node that serves this machine only (set on Windows/macOS by default): the
#: node's address is the loopback one and its servers (GCS, raylet, workers) listen there alone
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def loopback_only() -> Callable[[], None]:
    """Make the local Ray this process starts next listen on 127.0.0.1 only; return an undo.

    Sets :data:`LOOPBACK_ENV` to 0 for the processes Ray starts and, if Ray is already imported,
    ``ray._private.ray_constants.ENABLE_RAY_CLUSTER`` (read once, at import) for this one.
    """
    old_env = os.environ.get(LOOPBACK_ENV)
    os.environ[LOOPBACK_ENV] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    old_flag = getattr(constants, "ENABLE_RAY_CLUSTER", None) if constants else None
    if constants is not None:
        if not hasattr(constants, "ENABLE_RAY_CLUSTER"):
            raise _changed("ray._private.ray_constants.ENABLE_RAY_CLUSTER",
                           AttributeError("ENABLE_RAY_CLUSTER"))
        constants.ENABLE_RAY_CLUSTER = False

    def undo() -> None:
        if old_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = old_env
        if constants is not None:
            constants.ENABLE_RAY_CLUSTER = old_flag

    return undo


#: (module, attribute path, first Ray that has it) of every non-public name used above
PRIVATE_NAMES = (
    ("ray.tune.impl.tuner_internal", "TunerInternal", TESTED[0]),
    ("ray.tune.search.optuna", "OptunaSearch.on_trial_result", TESTED[0]),
    ("ray._private.state", "state.get_max_resources_from_cluster_config", MAX_RESOURCES_SINCE),
    ("ray.experimental.internal_kv", "_internal_kv_get", TESTED[0]),
    ("ray._private.accelerators", "NvidiaGPUAcceleratorManager.get_current_node_num_accelerators", TESTED[0]),
    ("ray.autoscaler._private.util", "prepare_config", TESTED[0]),
    ("ray.autoscaler._private.util", "validate_config", TESTED[0]),
    ("ray.autoscaler._private.fake_multi_node.node_provider", "FakeMultiNodeProvider._terminate_node", TESTED[0]),
    ("ray._private.node", "Node.kill_all_processes", TESTED[0]),
    ("ray._private.ray_constants", "ENABLE_RAY_CLUSTER", TESTED[0]),
    ("ray._private.state", "GlobalState.node_table", TESTED[0]),
    ("ray._private.services", "_get_gcs_client_options", TESTED[0]),
)


def check_api() -> list[str]:
    """Which of the non-public names raycg uses the installed Ray lacks (empty: all present)."""
    import importlib

    missing = []
    for module, path, since in PRIVATE_NAMES:
        if ray_version() < since:
            continue
        try:
            obj: Any = importlib.import_module(module)
            for part in path.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{module}.{path} ({type(exc).__name__}: {exc})")
    return missing
