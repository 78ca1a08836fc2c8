"""The Pipeline interface and what its phases get.

A study runs one pipeline. Its ``prepare`` runs once per study on the driver; every trial then
runs its phases in :data:`PHASES` order, each a method taking a :class:`TrialContext`. A phase
reports progress (a Tune report with a checkpoint of the trial's work directory, so a restarted
trial resumes mid-phase), puts its outputs into the study storage and its numbers into
``ctx.metrics``. An expected, deterministic failure raises :class:`TrialFailed` (no retry).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from raycg.errors import ConfigError
from raycg.study import prepared
from raycg.study.storage import Store
from raycg.utils.io import atomic_write_json

if TYPE_CHECKING:
    from raycg.study.spec import StudySpec

PHASES = ("train", "simulate", "score")
#: trial progress (0..1) at the end of each phase
PHASE_END = {"train": 0.6, "simulate": 0.9, "score": 1.0}
STATE_FILE = "state.json"


class TrialFailed(Exception):
    """An expected, deterministic failure of a trial (no retry): divergence, total blow-up, bad config."""

    def __init__(self, reason: str, phase: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.phase = phase


@dataclass(frozen=True)
class Objective:
    """What a hyperparameter search can judge after training alone."""

    per_epoch: str  #: reported after every training epoch (ASHA stops trials on it)
    final: str      #: in the trial's final metrics once training is done


class Pipeline(ABC):
    """train -> simulate -> score, plus the study-level checks and preparation they need."""

    name: ClassVar[str]
    #: spec fields the grid's energy weight and seed are written to, in each trial's config
    energy_weight_fields: ClassVar[tuple[str, ...]] = ()
    seed_fields: ClassVar[tuple[str, ...]] = ()
    #: what `raycg study tune` judges when its objective is the validation loss
    objective: ClassVar[Objective]
    #: whether trials need torch (its thread count follows the trial's CPUs)
    uses_torch: ClassVar[bool] = True

    def validate(self, spec: StudySpec, *, source: str) -> None:
        """Check the study before anything starts (raise ConfigError with one line).

        This base check: the pipeline reports the metric the study's verdict is about.
        """
        if spec.analysis.primary_metric not in self.metric_names():
            raise ConfigError(f"{source}: analysis.primary_metric: the {self.name} pipeline does not report "
                              f"{spec.analysis.primary_metric!r}")

    def check_trial(self, config: StudySpec, *, source: str) -> None:  # noqa: B027 - optional hook
        """Check one trial's config beyond what its fields validate (raise ConfigError)."""

    @abstractmethod
    def prepare(self, spec: StudySpec, store: Store, *, log: Callable[[str], None]) -> dict[str, Any]:
        """Build (or reuse) ``STUDY/prepared``; return the contents of its ``prepared.json``."""

    @abstractmethod
    def metric_names(self) -> list[str]:
        """Names of the metrics a finished trial reports (besides the objective's)."""

    @abstractmethod
    def epochs(self, config: StudySpec) -> int:
        """Training epochs of a trial (the time axis of early stopping)."""

    def simulation_steps(self, config: StudySpec) -> tuple[int, int] | None:
        """(integration steps, chunks) of the simulate phase, for the steps/s gauge; None: not steps."""
        return None

    @abstractmethod
    def train(self, ctx: TrialContext) -> None: ...

    @abstractmethod
    def simulate(self, ctx: TrialContext) -> None: ...

    @abstractmethod
    def score(self, ctx: TrialContext) -> None: ...


Reporter = Callable[..., None]


class TrialContext:
    """What a phase needs: the trial's typed config, its work directory, storage, and reporting.

    ``config`` is the study's spec with this trial's grid values set (validated once, when the
    trial was made); ``point`` holds those values (``energy_weight``, ``seed``, swept fields).
    """

    def __init__(self, *, trial_id: str, config: StudySpec, point: dict[str, Any], store: Store, work: Path,
                 state: dict[str, Any], reporter: Reporter):
        self.trial_id = trial_id
        self.config = config
        self.point = point
        self.store = store
        self.work = work
        self.state = state
        self.rel = f"trials/{trial_id}"
        self.metrics: dict[str, float] = {}
        self.convergence: dict[str, Any] | None = state.get("convergence")
        self.stage_times: dict[str, float] = dict(state.get("stage_times", {}))
        self._reporter = reporter
        self._prepared: Path | None = None

    @property
    def energy_weight(self) -> float:
        return float(self.point["energy_weight"])

    def report(self, metrics: dict[str, Any], *, phase: str, progress: float, checkpoint: bool = True) -> None:
        """Report intermediate metrics to Tune, with a checkpoint of the work directory."""
        self._reporter(metrics, phase=phase, progress=progress, checkpoint=checkpoint)

    def save_state(self) -> None:
        self.state["stage_times"] = self.stage_times
        self.state["convergence"] = self.convergence
        atomic_write_json(self.work / STATE_FILE, self.state)

    def prepared_dir(self) -> Path:
        """A local directory with the study's prepared artefacts."""
        if self._prepared is None:
            self._prepared = prepared.local_dir(self.store)
        return self._prepared

    def prepared_info(self) -> dict[str, Any]:
        return prepared.read_info(self.prepared_dir())

    def upload(self, local: str | Path, rel: str) -> None:
        """Copy a local output directory into the study storage under ``trials/<id>/<rel>``."""
        self.store.upload_dir(local, f"{self.rel}/{rel}")

    def upload_file(self, local: str | Path, rel: str) -> None:
        self.store.write_bytes(f"{self.rel}/{rel}", Path(local).read_bytes())

    def write_json(self, rel: str, obj: Any) -> None:
        self.store.write_json(f"{self.rel}/{rel}", obj)
