"""Shared pytest setup for every test folder (keep it small)."""

import os
import tempfile

# Ray (2.59+) turns token authentication on for the whole machine at the first local ray.init()
# unless the mode is set; tests always set it explicitly and keep usage stats off.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# HPO signs its saved search state with a per-machine key (~/.config/raycg/state.key by default):
# the tests use a key of their own, so no test reads or writes the user's.
os.environ.setdefault("RAYCG_STATE_KEY_FILE", os.path.join(tempfile.mkdtemp(prefix="raycg-test-key-"), "state.key"))


def pytest_collection_modifyitems(config, items):
    """Groups for pytest-xdist's ``--dist loadgroup`` (scripts/test.sh runs two workers): every test that
    starts Ray (marker ``ray``) runs on one worker, one after another, so two Ray instances never share the
    two cores and slow each other's polled deadlines; every other test is grouped by its folder, so a
    folder's session fixtures are built once. Without xdist the marker does nothing."""
    import pytest

    for item in items:
        group = "ray" if item.get_closest_marker("ray") else item.path.parent.name
        item.add_marker(pytest.mark.xdist_group(group))
