"""Statistics over trials grouped by a config column (energy weight): descriptives with bootstrap
CIs, tests vs the baseline Holm-corrected across groups, effect sizes, omnibus and trend tests,
and power. Everything is returned as pandas DataFrames."""

from raycg.stats.comparisons import TESTS, holm, pairwise_tests
from raycg.stats.effects import cliffs_delta, hedges_correction, hedges_g
from raycg.stats.power import detectable_effect, power_two_sample, seeds_for_power
from raycg.stats.summary import (
    HEADLINE_METRICS,
    default_direction,
    format_group,
    group_symbol,
    metric_label,
    sorted_groups,
    summarize,
    summarize_all,
    summary_table,
    verdict,
)

__all__ = [
    "HEADLINE_METRICS", "TESTS", "cliffs_delta", "default_direction", "detectable_effect", "format_group", "group_symbol", "hedges_correction", "hedges_g",
    "holm", "metric_label", "pairwise_tests", "power_two_sample", "seeds_for_power", "sorted_groups", "summarize", "summarize_all",
    "summary_table", "verdict",
]
