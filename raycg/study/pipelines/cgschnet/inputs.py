"""What the CGSchNet phases read: the dataset (one memory map per process), prepared artefacts, device."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raycg.data.format import CGDataset
    from raycg.study.pipelines.base import TrialContext
    from raycg.study.spec import StudySpec

_DATASETS: dict[str, Any] = {}


def load_dataset(path: str | Path) -> CGDataset:
    """Load (memory-mapped) and keep a dataset per process (Tune reuses actors between trials)."""
    from raycg.data import format as dfmt

    key = str(Path(path).resolve())
    if key not in _DATASETS:
        _DATASETS[key] = dfmt.load(path)
    return _DATASETS[key]


def trial_dataset(ctx: TrialContext) -> CGDataset:
    """The study's dataset: where the driver found it, or the copy shipped with ``prepared/``."""
    info = ctx.prepared_info()
    path = Path(info["dataset_path"])
    if info.get("dataset_rel") and not (path / "meta.json").is_file():
        path = ctx.prepared_dir() / info["dataset_rel"]
    return load_dataset(path)


def reference_tica(ctx: TrialContext):
    from raycg.cv import ReferenceTICA

    return ReferenceTICA.load(ctx.prepared_dir() / "tica.npz")


def scoring_reference(ctx: TrialContext):
    """``(dataset, tica)`` trials are scored against: the study's scoring trajectories
    (``prepared/reference_split.json``) and the reference TICA as their TICA; the whole dataset when
    nothing is held out or the prepared folder has no split. One subset per process."""
    from raycg.evaluate.floor import ReferenceSplit

    ds, tica = trial_dataset(ctx), reference_tica(ctx)
    path = ctx.prepared_dir() / "reference_split.json"
    if not path.is_file():
        return ds, tica
    split = ReferenceSplit.load(path)
    if not split.holdout:
        return ds, tica
    key = f"{ds.content_hash}|scoring|{','.join(map(str, split.scoring))}"
    if key not in _DATASETS:
        _DATASETS[key] = split.scoring_reference(ds)
    scoring = _DATASETS[key]
    return scoring, split.scoring_tica(tica, scoring)


def device_for(config: StudySpec) -> str:
    """``cuda`` when the trial was granted a GPU share and torch sees one, else ``cpu``."""
    if config.resources.gpu > 0:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"
