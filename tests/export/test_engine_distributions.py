"""The same model simulated by raycg's engine and by OpenMM samples the same distributions."""

from __future__ import annotations

import numpy as np
import pytest

openmm = pytest.importorskip(
    "openmm", reason="needs the openmm extra (pip install 'raycg[openmm]')"
)
pytestmark = pytest.mark.openmm


def _per_replica(res, tica) -> dict[str, np.ndarray]:
    """Per-replica averages [R] of bond/angle means and variances, potential energy and TIC 1-2."""
    out: dict[str, list[float]] = {}
    for r in range(res.n_replicas):
        x = res.replica_frames(r)[5:]  # first frames: relaxation from the start
        bonds = np.linalg.norm(x[:, 1:] - x[:, :-1], axis=-1)
        u, v = x[:, :-2] - x[:, 1:-1], x[:, 2:] - x[:, 1:-1]
        angles = np.arccos(
            np.clip(
                (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1), -1.0, 1.0
            )
        )
        tic = tica.transform(x)[:, :2]
        values = {
            "bond_mean": bonds.mean(),
            "bond_var": bonds.var(0).mean(),
            "angle_mean": angles.mean(),
            "angle_var": angles.var(0).mean(),
            "energy": np.nanmean(res.potential_energy[r, 5:]),
            "tic1_mean": tic[:, 0].mean(),
            "tic2_mean": tic[:, 1].mean(),
            "tic1_var": tic[:, 0].var(),
            "tic2_var": tic[:, 1].var(),
        }
        for k, v in values.items():
            out.setdefault(k, []).append(float(v))
    return {k: np.asarray(v) for k, v in out.items()}


def test_raycg_and_openmm_engines_sample_the_same_distributions(inputs):
    """8 replicas x 600 steps (2.4 ps at 4 fs, friction 5/ps, 300 K) from the same starts: every
    per-replica average agrees between the engines within 5 standard errors (Welch), and both hold the
    temperature; the energies each reports are the model's at its frames. A unit slip (forces off by
    4.184 or 10) moves bond lengths and variances; an energy slip, the reported energies."""
    from raycg.cv import fit_reference_tica
    from raycg.model import load_model
    from raycg.sim import SimulationConfig, simulate
    from raycg.sim.openmm_engine import simulate_openmm

    root, ds = inputs
    model = load_model(root / "model")
    starts = ds.coords[np.arange(8) * 200].astype(np.float64)
    cfg = SimulationConfig(
        n_steps=600,
        save_every=10,
        dt_ps=0.004,
        friction_per_ps=5.0,
        temperature_K=300.0,
        seed=2,
        compile=False,
    )
    ours = simulate(model, ds.masses, starts, cfg, progress=False)
    theirs = simulate_openmm(model, ds.masses, starts, cfg, progress=False, workers=1)
    assert ours.alive.all() and theirs.alive.all()
    tica = fit_reference_tica(ds, lag=5, dim=2)
    a, b = _per_replica(ours, tica), _per_replica(theirs, tica)
    for key in a:
        se = np.sqrt(a[key].var(ddof=1) / len(a[key]) + b[key].var(ddof=1) / len(b[key]))
        diff = a[key].mean() - b[key].mean()
        assert abs(diff) < 5 * se + 1e-9, (
            f"{key}: raycg {a[key].mean():.4g} vs openmm {b[key].mean():.4g} (se {se:.2g})"
        )
    assert 0.8 < b["bond_var"].mean() / a["bond_var"].mean() < 1.25
    for res in (ours, theirs):
        assert abs(np.nanmean(res.kinetic_temperature[:, 5:]) / 300.0 - 1) < 0.1
    # the energies each engine reports are the model's at its saved frames (kcal/mol): an energy unit
    # slip that the spread of per-replica means could hide shows here exactly
    from .helpers import raycg_energy_forces

    for res in (ours, theirs):
        x = res.positions.reshape(-1, *res.positions.shape[2:])
        e_model, _ = raycg_energy_forces(model, x)
        e_run = res.potential_energy.reshape(-1)
        assert np.abs(e_run - e_model).max() < 1e-3 * max(1.0, np.abs(e_model).max()), res.info["forces"]
