"""Phase ``score``: the trial's trajectories against the reference TICA free energy (raycg.evaluate),
on the study's scoring trajectories (``inputs.scoring_reference``: the reference the noise floor is scored
against too).

``scores.json`` and ``fes.npz`` go to the trial's directory; the metrics (with their within-trial
confidence bounds) into ``result.json``, and the convergence verdict into its ``convergence``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from raycg.study.pipelines.cgschnet.inputs import scoring_reference, trial_dataset

if TYPE_CHECKING:
    from raycg.study.pipelines.base import TrialContext


def score_phase(ctx: TrialContext) -> None:
    from raycg.evaluate import load_model_trajectories, score

    ds = trial_dataset(ctx)
    samples = load_model_trajectories(ctx.work / "sim", reference=ds)
    samples.set_start_frames(np.load(ctx.prepared_dir() / "start_positions.npy"))  # start basins from the starts
    reference, tica = scoring_reference(ctx)
    sc = score(reference, tica, samples, ctx.config.evaluation.eval_config())
    out = ctx.work / "scores"
    sc.save(out)
    for f in sorted(out.iterdir()):
        if f.is_file():
            ctx.upload_file(f, f.name)
    ctx.metrics.update({k: float(v) for k, v in sc.metrics.items()
                        if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)})
    ctx.convergence = sc.convergence.to_dict() if sc.convergence is not None else None
