"""Human-readable summary of a CG dataset (``raycg data info``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from raycg.data.format import CGDataset


def _fmt_time(ps: float) -> str:
    for unit, f in (("ms", 1e9), ("µs", 1e6), ("ns", 1e3)):
        if ps >= f:
            return f"{ps / f:.4g} {unit}"
    return f"{ps:.4g} ps"


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        if len(v) > 12:
            return "[" + ", ".join(_fmt_value(x) for x in v[:12]) + f", ... ({len(v)} items)]"
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    return str(v)


def _fmt_tree(obj: Any, indent: int = 2) -> list[str]:
    lines = []
    pad = " " * indent
    if isinstance(obj, dict):
        width = max((len(str(k)) for k in obj), default=0)
        for k, v in obj.items():
            if isinstance(v, dict):
                lines.append(f"{pad}{k}:")
                lines += _fmt_tree(v, indent + 2)
            elif isinstance(v, list) and v and all(isinstance(x, list) for x in v) and len(v) <= 12:
                lines.append(f"{pad}{k}:")
                lines += [f"{pad}  {_fmt_value(row)}" for row in v]
            else:
                lines.append(f"{pad}{str(k) + ':':<{width + 1}} {_fmt_value(v)}")
    else:
        lines.append(f"{pad}{_fmt_value(obj)}")
    return lines


def describe(ds: CGDataset) -> str:
    """Frames, beads, trajectories, total time, temperature, hash, beads and the provenance summary."""
    m = ds.meta
    lengths = ds.trajectory_lengths()
    seq = " ".join(f"{r}{i}" for r, i in zip(m.beads.residue_names, m.beads.residue_ids))
    rows = [
        ("dataset", f"{ds.path if ds.path is not None else m.name}"),
        ("frames", f"{ds.n_frames:,}"),
        ("beads", f"{ds.n_beads} ({m.mapping.kind} map, {len(m.bonds)} bonds)"),
        ("trajectories", f"{ds.n_trajectories:,} (frames per trajectory min {int(lengths.min())}, "
                         f"median {int(np.median(lengths))}, max {int(lengths.max())})" if len(lengths) else "0"),
        ("total time", f"{_fmt_time(ds.n_frames * m.dt_frame_ps)} ({m.dt_frame_ps:g} ps between frames)"),
        ("temperature", f"{m.temperature_K:g} K"),
        ("forces", "yes (kcal/mol/Å)" if m.has_forces else "no"),
        ("weights", "yes" if m.has_weights else "no"),
        ("hash", m.content_hash or "(none)"),
        ("residues", seq if len(seq) < 200 else seq[:197] + "..."),
        ("bead types", " ".join(str(t) for t in m.beads.types)),
        ("masses (amu)", " ".join(f"{x:.4g}" for x in m.beads.masses)),
    ]
    prov = m.provenance or {}
    if prov.get("importer"):
        rows.append(("imported by", f"{prov['importer']} (raycg {prov.get('raycg_version', '?')})"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k + ':':<{width + 1}} {v}" for k, v in rows]
    srcs = prov.get("sources") or []
    if srcs:
        lines.append("sources:")
        for s in srcs[:10]:
            lines.append(f"  {s.get('path')}  sha256:{str(s.get('sha256'))[:16]}...")
        if len(srcs) > 10:
            lines.append(f"  ... and {len(srcs) - 10} more")
    summary = prov.get("summary")
    if summary:
        lines += landscape_lines(summary)
        lines.append("summary:")
        lines += _fmt_tree(summary)
    return "\n".join(lines)


def landscape_lines(summary: dict[str, Any]) -> list[str]:
    """The reference landscape a generator recorded (``summary["landscape"]``, see
    :func:`raycg.synth.landscape.landscape_summary`): basins, barrier, folded population, transitions
    per trajectory, slowest implied timescales. Empty when the summary has none."""
    land = summary.get("landscape")
    if not isinstance(land, dict) or "n_basins" not in land:
        return []
    pops = ", ".join(f"{100 * p:.0f}%" for p in land.get("basin_populations", []))
    bars = [b for b in land.get("basin_escape_barriers_kT", []) if b is not None]
    low = land.get("lowest_barrier_kT")
    its = land.get("implied_timescales_ps") or []
    folded = land.get("folded_population", summary.get("folded_population"))
    mis = summary.get("misfolded_population")
    rows = [
        ("basins", f"{land['n_basins']} in the TIC 1-2 FES (populations {pops}); lowest escape barrier "
                   + (f"{low:.2f} kT" if low is not None else "n/a (no two basins touch)")
                   + (f" (per basin {', '.join(f'{b:.2f}' for b in bars)} kT)" if len(bars) > 1 else "")),
        ("folded", (f"{100 * folded:.1f}%" if folded is not None else "n/a")
                   + f" (Cα RMSD < {land.get('folded_rmsd_A', summary.get('rmsd_threshold_A'))} Å to native)"
                   + (f"; misfolded {100 * mis:.1f}%" if mis is not None else "")),
        ("transitions", f"{land.get('folding_transitions_per_trajectory', float('nan')):.3g} folding + unfolding per "
                        "trajectory (Cα RMSD hysteresis); "
                        f"{land.get('basin_transitions_per_trajectory', float('nan')):.3g} between TIC basin cores"),
        ("slowest ITS", (f"{its[0]:.3g} ps" if its else "n/a") + f" at TICA lag {land.get('tica_lag_frames')} frames "
                        f"({land.get('tica_lag_ps', float('nan')):.3g} ps)"
                        + (f"; next {', '.join(f'{t:.3g}' for t in its[1:])} ps" if len(its) > 1 else "")),
    ]
    width = max(len(k) for k, _ in rows)
    return ["reference landscape:"] + [f"  {k + ':':<{width + 1}} {v}" for k, v in rows]
