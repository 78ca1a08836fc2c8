"""Statistics of a study (energy weights × seeds, paired by seed): the exact sign-flip test of the
paired mean and its inverted interval (the verdict's decision test), Student-t intervals, paired and
unpaired sensitivity tests vs the baseline with Holm families, equivalence (TOST), power of the test
used, and the verdict (:func:`analyze_study`). Tables are pandas DataFrames."""

from raycg.stats.comparisons import (
    PAIRED_TESTS,
    TEST_NAMES,
    UNPAIRED_TESTS,
    holm,
    pairwise_tests,
    unpaired_tests,
)
from raycg.stats.convergence import GateOdds, perfect_study_pass_probability, study_convergence_gate
from raycg.stats.effects import cliffs_delta, hedges_correction, hedges_g
from raycg.stats.groups import format_group, group_symbol, resolve_baseline, sorted_groups
from raycg.stats.intervals import T_INTERVAL, t_interval
from raycg.stats.paired import effect_dz, friedman, paired_t, paired_tests, rank_biserial, tost_paired
from raycg.stats.power import (
    detectable_effect,
    power_t,
    power_two_sample,
    seeds_for_power,
    signflip_power,
    signflip_seeds_for_power,
)
from raycg.stats.signflip import min_pairs, signflip_interval, signflip_p, signflip_tost, smallest_p
from raycg.stats.study import (
    DECISION_TESTS,
    PRIMARY_TEST,
    STATUSES,
    MetricStatistics,
    PowerStatement,
    StudyStatistics,
    VerdictLine,
    analyze_study,
    primary_decisions,
)
from raycg.stats.summary import summarize

__all__ = [
    "DECISION_TESTS", "PAIRED_TESTS", "PRIMARY_TEST", "STATUSES", "TEST_NAMES", "T_INTERVAL", "UNPAIRED_TESTS",
    "GateOdds", "MetricStatistics",
    "PowerStatement", "StudyStatistics", "VerdictLine", "analyze_study", "cliffs_delta", "detectable_effect",
    "effect_dz", "format_group", "friedman", "group_symbol", "hedges_correction", "hedges_g", "holm", "paired_t",
    "paired_tests", "pairwise_tests", "perfect_study_pass_probability", "power_t", "power_two_sample",
    "min_pairs", "primary_decisions", "rank_biserial", "resolve_baseline", "seeds_for_power", "signflip_interval",
    "signflip_p", "signflip_power", "signflip_seeds_for_power", "signflip_tost", "smallest_p", "sorted_groups",
    "study_convergence_gate", "summarize", "t_interval", "tost_paired", "unpaired_tests",
]
