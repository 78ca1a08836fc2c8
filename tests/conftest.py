"""Shared pytest setup for every test folder (keep it small)."""

import os

# Ray (2.59+) turns token authentication on for the whole machine at the first local ray.init()
# unless the mode is set; tests always set it explicitly and keep usage stats off.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
