"""The energy-matching target a study tested, in words, for the report's design section.

Read from the study's spec (``training.loss``) and the prepared targets' record
(``prepared/targets/*.json``, written by :func:`raycg.train.compute_energy_targets`): the form, the
TICA components and why they were chosen, the density estimate and its bins, how empty bins were
floored, and whether the loss is offset-invariant. The entropy caveat of free-energy targets is
stated with it (docs/energy_target.md). In a study with arms, each arm with w_E > 0 gets its target
(the spec's loss with the arm's ``training.loss.*`` values) and, for ``fes-corrected``, its base model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_FORMS = {
    "tica-marginal": "the published form: E(x) = −k_BT Σ_c ln p_c(y_c(x)), a sum of one-dimensional free "
                     "energies of the reference TICA components c (the marginals treated as independent)",
    "tica-joint": "E(x) = −k_BT ln p(y_1(x), …, y_k(x)), the joint free energy of the first k reference TICA "
                  "components",
    "fes-corrected": "E(x) = U₀(x) + F_ref(s(x)) − F₀(s(x)): a base model U₀ plus the difference between the "
                     "reference's free energy of the TICA coordinates s and the base model's own simulated one "
                     "(one step of iterative Boltzmann inversion on s), so that an exact match reproduces the "
                     "reference marginal of s",
}

_ENTROPY = ("Caveat of the free-energy targets (`tica-marginal`, `tica-joint`): a free energy F(s) of collective "
            "variables already contains the "
            "entropy of every coordinate orthogonal to s, so a model whose total energy equals F(s(x)) samples "
            "p(s)·Ω(s) (Ω = configurational volume at s), not p(s); in a two-state toy whose folded channel is 4× "
            "narrower, raycg's own sampler moves the folded fraction from 0.695 to 0.386 under that target and back "
            "to 0.685 under the corrected one (docs/energy_target.md; tests/train/test_energy_target_entropy.py). "
            "`fes-corrected` removes the double counting for the CV marginal; no form matches the "
            "CG potential of mean force over all bead coordinates.")
_IN_SAMPLE = ("Free energies of the reference (F_ref) are histograms of every reference frame, the scoring "
              "trajectories included, so an energy-matched model's scores are partly in-sample: a model that "
              "reproduced F_ref exactly would score about the in-sample floor, not the held-out one (the Noise "
              "floor section gives both); read an energy arm's advantage beside that difference.")


def _loss(spec: dict[str, Any]) -> dict[str, Any]:
    training = spec.get("training") if isinstance(spec, dict) else None
    loss = training.get("loss") if isinstance(training, dict) else None
    return loss if isinstance(loss, dict) else {}


def _target_records(study: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((study / "prepared" / "targets").glob("*.json")):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict):
            records.append(info)
    return records


def _density_text(rec: dict[str, Any], loss: dict[str, Any]) -> str:
    density = rec.get("density") or loss.get("density", "histogram")
    if density == "kde":
        bw = rec.get("bandwidth") or loss.get("kde_bandwidth") or "scott"
        return f"Gaussian KDE (bandwidth {bw})"
    bins = rec.get("bins") or loss.get("bins", 50)
    return f"histogram density, {bins} bins per component over the reference range"


def _components_text(rec: dict[str, Any], loss: dict[str, Any]) -> str:
    comp = rec.get("components") or {}
    k = comp.get("k", rec.get("n_components"))
    rule = comp.get("rule", loss.get("n_components", "slow"))
    why = {"slow": "the components whose implied timescale exceeds the TICA lag (eigenvalue > 1/e)",
           "all": "every component of the reference TICA (the published choice)",
           "first-n": "the first components, as the spec asks"}.get(str(rule), str(rule))
    lam = comp.get("eigenvalues") or []
    eig = f", eigenvalues {', '.join(f'{x:.3g}' for x in lam)}" if lam else ""
    return f"{k if k is not None else '?'} TIC(s): {why}{eig}"


def _base_text(loss: dict[str, Any], baseline: str | None) -> str:
    """What U₀ of a ``fes-corrected`` target was, in words."""
    if loss.get("base_model", "priors") == "priors":
        return ("U₀ = the priors alone, simulated once in the study's preparation with the trials' settings "
                "(`prepared/correction_base.json`), so the network learns F_ref − F₀")
    who = f"the `{baseline}` arm's trial" if baseline else "the energy-weight-0 trial"
    return (f"U₀ = {who} of the same seed (its trained model's energy at every reference frame; F₀ from its own "
            "simulation after burn-in): trained and simulated once per seed and shared, not retrained")


def _arm_loss(loss: dict[str, Any], arm: dict[str, Any]) -> dict[str, Any]:
    prefix = "training.loss."
    return {**loss, **{k[len(prefix):]: v for k, v in arm.items() if k.startswith(prefix)}}


def energy_target_lines(study: Path, spec: dict[str, Any], weights: list[Any],
                        arms: dict[str, dict[str, Any]] | None = None, baseline: str | None = None) -> list[str]:
    """Design-section bullets defining the energy target (empty when no weight uses one); with
    ``arms`` (name: the values it sets, in the order given), one bullet per arm with w_E > 0."""
    loss = _loss(spec)
    if arms:
        lines = []
        for name, arm in arms.items():
            if float(arm.get("energy_weight", 0)) > 0:
                lines += _target_lines(study, _arm_loss(loss, arm), f"arm `{name}`, w_E = {arm['energy_weight']:g}",
                                       baseline)[:1]
        return lines + [f"- {_ENTROPY}", f"- {_IN_SAMPLE}"] if lines else []
    if str(loss.get("energy_target", "none")) == "none" or not any(float(w) > 0 for w in weights if w is not None):
        return []
    return _target_lines(study, loss, "", None)


def _target_lines(study: Path, loss: dict[str, Any], who: str, baseline: str | None) -> list[str]:
    """The bullet defining one target (``who``: whose it is, or '') and the entropy caveat."""
    mode = str(loss.get("energy_target", "none"))
    records = [r for r in _target_records(study) if r.get("mode", mode) == mode] or [{}]
    rec = records[0]
    offset = ("offset-invariant (the energy loss compares batch-centred energies, so the free energy's arbitrary "
              "zero does not enter)" if loss.get("offset_invariant") else
              "not offset-invariant (MSE on absolute energies, as published; the free energy's zero is the "
              "density's normalisation)")
    floor = ""
    if rec.get("n_floored") is not None and rec.get("n_frames"):
        floor = (f"; empty or sparse bins floored at half a sample's density ({rec['n_floored']} of "
                 f"{rec['n_frames']} frame-components hit the floor), so no target is infinite")
    base = f" {_base_text(loss, baseline)}." if mode == "fes-corrected" else ""
    whose = f"Energy target of {who}" if who else "Energy target"
    return [
        f"- **{whose}** (`training.loss.energy_target: {mode}`): {_FORMS.get(mode, mode)}.{base} Computed on "
        f"{_components_text(rec, loss)}; {_density_text(rec, loss)}{floor}. The network learns E − E_prior (the "
        f"priors are added back for simulation); the loss is w_F·MSE(forces) + w_E·MSE(energies), {offset}.",
        f"- {_ENTROPY}",
        f"- {_IN_SAMPLE}",
    ]
