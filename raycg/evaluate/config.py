"""Configuration of the free-energy scoring (``EvalConfig``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from raycg.config import StrictModel


class EvalConfig(StrictModel):
    """How trajectories are projected, histogrammed and scored against the reference.

    Defaults follow the anchors' protocol (DESIGN.md §8): first 10% of every replica dropped as
    burn-in, the FES on the first two TICs, a 60×60 grid spanning the reference range plus 10%
    padding on each side. Build it from user input with ``raycg.config.validate_config`` /
    ``load_config`` (one-line ``file:line: field: message`` errors). No custom ``__init__`` on purpose:
    pydantic calls a custom ``__init__`` from ``model_validate`` and would wrap its errors.
    """

    burn_in_fraction: float = Field(0.1, ge=0.0, lt=1.0,
                                    description="fraction of each replica's frames dropped at its start")
    n_components: int = Field(2, ge=2, le=10,
                              description="TICs used: the 2-D FES uses TIC 1-2; 1-D marginals and W1 use all of them")
    bins: int = Field(60, ge=4, le=1000, description="bins per TIC axis of the FES grid")
    padding: float = Field(0.1, ge=0.0, le=2.0,
                           description="grid margin on each side, as a fraction of the reference range per TIC")
    temperature_K: float | None = Field(None, gt=0,
                                        description="k_B·T for F = -k_B T ln p; default: the reference temperature")
    kl_epsilon: float = Field(1e-6, gt=0.0, lt=1e-2,
                              description="pseudo-probability added to every cell of both distributions "
                                          "before KL (then renormalised); the regulariser for empty bins")
    w1_bins: int = Field(24, ge=4, le=40,
                         description="bins per axis of the coarse grid on which the 2-D Wasserstein-1 is solved "
                                     "exactly (optimal transport between the cell masses)")
    folded_rmsd_A: float = Field(
        1.5, gt=0.0,
        description="a frame is folded when its Cα RMSD to native is below this (Å). 1.5 Å for Cα CLN025: "
                    "thermal fluctuations inside the folded basin stay under ~1 Å, the misfolded "
                    "(register-shifted) hairpin sits near 2-2.5 Å and unfolded frames beyond 3 Å")
    folding_core_A: float = Field(
        1.0, gt=0.0,
        description="folding transitions (hysteresis): a trajectory is committed to the folded state when its Cα "
                    "RMSD to native drops below this (Å); a folding event is a committed change unfolded → folded")
    unfolded_core_A: float = Field(
        3.0, gt=0.0,
        description="folding transitions (hysteresis): a trajectory is committed to the unfolded state when its "
                    "Cα RMSD to native rises above this (Å); an unfolding event is a committed change folded → "
                    "unfolded. Frames between the two cores keep the last committed state")
    native_pdb: str | None = Field(
        None, description="structure whose Cα atoms are the native reference for RMSD; default: the packaged "
                          "CLN025 structure when the reference's Cα beads are CLN025, else the reference frame "
                          "nearest the deepest FES well")
    rmsd_max_frames: int = Field(2_000_000, ge=1000,
                                 description="RMSD-based metrics use at most this many evenly strided frames per set")
    basin_bins: int = Field(30, ge=4, le=200,
                            description="bins per axis of the coarse reference FES on which basins are defined")
    basin_merge_kT: float = Field(1.5, gt=0.0,
                                  description="minima separated by a barrier lower than this (k_B T, above the "
                                              "higher minimum) are merged into one basin")
    basin_core_kT: float = Field(1.0, gt=0.0,
                                 description="a basin's core is the bins within this many k_B T of its minimum; "
                                             "transitions are counted between cores (milestoning)")
    basin_min_population: float = Field(0.01, ge=0.0, lt=0.5,
                                        description="basins holding less reference probability are merged into "
                                                    "their lowest-barrier neighbour")

    # --- blow-ups, within-trial uncertainty, convergence (METRICS.md) ---------------------------
    blowup_penalty: bool = Field(
        True, description="replica-time lost to blow-ups enters the model distribution as mass outside the "
                          "reference grid (KL, JS and per-TIC KL) and as mass at the grid's diagonal distance "
                          "(W1), so a model that blows up scores worse; false: score the saved frames only")
    bootstrap_resamples: int = Field(
        200, ge=0, le=100_000,
        description="block-bootstrap resamples over replicas (replicas are the independent units) for the "
                    "<metric>_ci_low/_ci_high columns; 0: no intervals")
    bootstrap_resamples_w1: int = Field(
        200, ge=0, le=100_000,
        description="resamples for the W1 interval (each is one exact transport on the w1_bins grid, ~5 ms "
                    "with POT's network simplex at a trial's ~200 x 200 surplus/deficit cells); at most "
                    "bootstrap_resamples are used")
    ci_level: float = Field(0.95, gt=0.5, lt=1.0, description="coverage of the bootstrap intervals")
    bootstrap_seed: int = Field(0, ge=0, description="seed of the bootstrap resampling (deterministic)")
    min_time_over_timescale: float = Field(
        5.0, ge=0.0,
        description="convergence: each replica's simulated time after burn-in (median over replicas) must be "
                    "at least this many times the slowest implied TICA timescale: the reference's, or the model's "
                    "own on the reference TICs when that is slower")
    min_crossings_per_replica: float = Field(
        1.0, ge=0.0,
        description="convergence: folding + unfolding events (RMSD hysteresis) per replica, averaged over "
                    "replicas, must reach this; fewer means the folded population still reflects the starts")
    one_state_fraction: float = Field(
        0.02, ge=0.0, lt=0.5,
        description="convergence: a model whose pooled folded fraction is below this (or above 1 minus it) "
                    "holds one state; it passes the crossing check without crossings after burn-in when at "
                    "least min_one_state_departures replicas started in the other state and every one of them "
                    "left it (the starts no longer bias that state's population; brief returns into it after "
                    "burn-in are samples of it and are reported, not a reason to fail)")
    min_one_state_departures: int = Field(
        8, ge=1, description="convergence: replicas that must have started in, and left, the depleted state")
    drift_alpha: float = Field(
        0.01, gt=0.0, lt=0.5,
        description="convergence: the first and second half of the runs (after burn-in) disagree when a "
                    "permutation test over replicas (swapping each replica's halves) gives p below this")
    start_basin_alpha: float = Field(
        0.01, gt=0.0, lt=0.5,
        description="convergence: replicas started folded and unfolded disagree when a one-sided permutation "
                    "test of their folded-fraction difference gives p below this")
    convergence_permutations: int = Field(
        9999, ge=99, le=100_000,
        description="random permutations in each convergence test (the smallest p is 1/(this + 1): a study "
                    "of n trials holds its tests to α/n at the strictest, so this must exceed n/α)")

    @model_validator(mode="after")
    def _core_below_merge(self) -> EvalConfig:
        if self.basin_core_kT > self.basin_merge_kT:
            raise ValueError(f"basin_core_kT ({self.basin_core_kT}) must not exceed basin_merge_kT "
                             f"({self.basin_merge_kT}), or cores of neighbouring basins could touch")
        if not self.folding_core_A < self.unfolded_core_A:
            raise ValueError(f"folding_core_A ({self.folding_core_A}) must be below unfolded_core_A "
                             f"({self.unfolded_core_A})")
        if not self.folding_core_A <= self.folded_rmsd_A <= self.unfolded_core_A:
            raise ValueError(f"folded_rmsd_A ({self.folded_rmsd_A}) must lie between folding_core_A "
                             f"({self.folding_core_A}) and unfolded_core_A ({self.unfolded_core_A})")
        return self
