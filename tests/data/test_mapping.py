"""Cα slice map, constraint-aware force aggregation, custom maps, unknown residues."""

from __future__ import annotations

import json

import mdtraj
import numpy as np
import pytest

from raycg import units as U
from raycg.data.mapping import AMINO_ACIDS, RESIDUE_MASSES, ca_map, custom_map, parse_sequence
from raycg.errors import InputError

from .data_helpers import CLN025_PDB


@pytest.fixture(scope="module")
def aa():
    return mdtraj.load(str(CLN025_PDB))


def test_ca_map_of_cln025(aa):
    m = ca_map(aa.topology)
    assert m.n_beads == 10 and m.n_atoms == 166
    assert m.beads.residue_names == parse_sequence("YYDPETGTWY")
    assert m.beads.types == [AMINO_ACIDS.index(r) for r in m.beads.residue_names]
    assert m.bonds == [(i, i + 1) for i in range(9)]
    ca = aa.topology.select("name CA")
    xyz = aa.xyz * 10
    np.testing.assert_allclose(m.map_coords(xyz)[0], xyz[0, ca], atol=1e-5)
    d = np.linalg.norm(np.diff(m.map_coords(xyz)[0], axis=0), axis=1)
    assert np.all(np.abs(d - 3.8) < 0.15)  # Å, the folded structure's Cα trace
    # residue masses from the atoms present: interior Thr = standard residue mass, charged Asp one H
    # less, the C-terminal Tyr has an extra O (OXT)
    assert m.beads.masses[5] == pytest.approx(RESIDUE_MASSES["THR"], abs=0.05)
    assert m.beads.masses[2] == pytest.approx(RESIDUE_MASSES["ASP"] - 1.008, abs=0.05)
    assert m.beads.masses[9] > RESIDUE_MASSES["TYR"]
    assert ca_map(aa.topology, bead_mass="ca").beads.masses == pytest.approx([12.011] * 10, abs=1e-3)


def test_distinct_termini_types(aa):
    m = ca_map(aa.topology, termini=True)
    tyr = AMINO_ACIDS.index("TYR")
    assert m.beads.types[0] == 20 + tyr and m.beads.types[-1] == 40 + tyr and m.beads.types[1] == tyr
    assert m.beads.type_names[m.beads.types[0]] == "N-TYR" and len(m.beads.type_names) == 60


def test_constraint_aware_forces_equal_sum_over_constrained_hydrogens(aa):
    """OpenMM (amber14, HBonds constraints) gives the constraints and the all-atom forces; the mapped
    force on each bead is the force on its Cα plus on the hydrogens OpenMM constrains to that Cα."""
    openmm = pytest.importorskip("openmm")
    app = pytest.importorskip("openmm.app")
    unit = pytest.importorskip("openmm.unit")
    pdb = app.PDBFile(str(CLN025_PDB))
    system = app.ForceField("amber14-all.xml").createSystem(pdb.topology, constraints=app.HBonds,
                                                            nonbondedMethod=app.NoCutoff)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    rng = np.random.default_rng(1)
    pos0 = np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    frames, forces = [], []
    for _ in range(3):
        pos = pos0 + rng.normal(0, 0.005, pos0.shape)
        ctx.setPositions(pos)
        f = ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        frames.append(pos)
        forces.append(f)
    forces = np.array(forces) * U.KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A
    constrained = {}
    for i in range(system.getNumConstraints()):
        a, b, _ = system.getConstraintParameters(i)
        constrained.setdefault(a, set()).add(b)
        constrained.setdefault(b, set()).add(a)
    m = ca_map(aa.topology)  # constraints found independently, from mdtraj's bonds
    cg = m.map_forces(forces)
    ca = aa.topology.select("name CA")
    n_h = 0
    for bead, a in enumerate(ca):
        group = [a] + sorted(constrained.get(int(a), ()))
        n_h += len(group) - 1
        assert all(aa.topology.atom(h).element.symbol == "H" for h in group[1:])
        np.testing.assert_allclose(cg[:, bead], forces[:, group].sum(axis=1), rtol=1e-5, atol=1e-3)
    assert n_h == 11  # one Hα per residue, two on Gly
    # the map records it, and disabling it keeps the Cα force alone (which differs)
    assert m.info.force_atoms_per_bead[5] == sorted([int(ca[5])] + sorted(constrained[int(ca[5])]))
    plain = ca_map(aa.topology, constraints="none").map_forces(forces)
    np.testing.assert_allclose(plain, forces[:, ca], rtol=1e-5, atol=1e-4)
    assert np.abs(plain - cg).max() > 1.0


def test_unknown_residue_is_rejected(aa):
    top = aa.topology.copy()
    top.residue(3).name = "XYZ"
    with pytest.raises(InputError, match=r"unknown residue 'XYZ'.*XYZ4.*custom map"):
        ca_map(top)


def test_protonation_variants_are_known(aa):
    top = aa.topology.copy()
    top.residue(2).name = "ASH"
    assert ca_map(top).beads.residue_names[2] == "ASP"


def test_custom_map_yaml_backbone_and_sidechain(aa, tmp_path):
    spec = tmp_path / "map.yaml"
    spec.write_text(
        "beads:\n"
        "  - {selection: 'resSeq 1 and name CA', name: CA}\n"
        "  - {selection: 'resSeq 1 and sidechain and not element H', name: SC, center: com, type: 30}\n"
        "  - {selection: 'resSeq 2 and backbone', name: BB, center: cog}\n"
        "bonds: [[0, 1], [0, 2]]\n")
    m = custom_map(aa.topology, spec)
    xyz = aa.xyz * 10
    sc = aa.topology.select("resSeq 1 and sidechain and not element H")
    masses = np.array([aa.topology.atom(i).element.mass for i in sc])
    com = (xyz[0, sc] * masses[:, None]).sum(0) / masses.sum()
    bb = aa.topology.select("resSeq 2 and backbone")
    got = m.map_coords(xyz)[0]
    np.testing.assert_allclose(got[1], com, atol=1e-4)
    np.testing.assert_allclose(got[2], xyz[0, bb].mean(0), atol=1e-4)
    assert m.beads.types == [AMINO_ACIDS.index("TYR"), 30, AMINO_ACIDS.index("TYR")]
    assert m.bonds == [(0, 1), (0, 2)] and m.info.kind == "custom"
    # side-chain heavy atoms carry their constrained hydrogens' forces too
    f = np.random.default_rng(0).normal(size=(1, aa.n_atoms, 3))
    hs = [b.index for a, b in aa.topology.bonds if a.index in sc and b.element.symbol == "H"]
    hs += [a.index for a, b in aa.topology.bonds if b.index in sc and a.element.symbol == "H"]
    np.testing.assert_allclose(m.map_forces(f)[0, 1], f[0, list(sc) + hs].sum(0), atol=1e-5)


def test_rigid_group_split_between_beads_is_recorded_not_merged(aa, tmp_path):
    """Tyr1's N is in the backbone bead but its H2, H3 fall in mdtraj's 'sidechain' selection."""
    spec = tmp_path / "split.yaml"
    spec.write_text("beads:\n  - selection: 'resSeq 1 and name N'\n  - selection: 'resSeq 1 and name H2'\n")
    m = custom_map(aa.topology, spec)
    n, h2 = (int(aa.topology.select(f"resSeq 1 and name {x}")[0]) for x in ("N", "H2"))
    assert m.info.force_atoms_per_bead == [[n], [h2]] and m.info.split_rigid_groups == 1


def test_custom_map_json_and_errors(aa, tmp_path):
    good = tmp_path / "m.json"
    good.write_text(json.dumps({"beads": [{"selection": "name CA and resSeq 1 to 3"}]}))
    assert custom_map(aa.topology, good).beads.names == ["CA"]
    bad = tmp_path / "empty.yaml"
    bad.write_text("beads:\n  - selection: 'resSeq 99 and name CA'\n")
    with pytest.raises(InputError, match="selects no atom"):
        custom_map(aa.topology, bad)
    overlap = tmp_path / "overlap.yaml"
    overlap.write_text("beads:\n  - selection: 'resSeq 1'\n  - selection: 'resSeq 1 and name CA'\n")
    with pytest.raises(InputError, match="must not overlap"):
        custom_map(aa.topology, overlap)
    typo = tmp_path / "typo.yaml"
    typo.write_text("beads:\n  - selection: 'resSeq 1 and name CA'\n    centre: com\n")
    with pytest.raises(InputError, match=r"typo.yaml:3: beads.0.centre: unknown field"):
        custom_map(aa.topology, typo)
