"""A corpus of malformed inputs for every raycg command (built once into a temporary directory).

Each :class:`Case` is a command line as a user types it (``{root}``: the corpus inputs, ``{out}``: a
fresh output path of the case that must not exist afterwards), the input paths it reads (hashed
before and after: they must be byte-identical) and optional words the error line must contain.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from raycg.data.format import CGDataset, load, save, write_topology_pdb

from ..data.data_helpers import make_dataset

GOOD = "ds/good"
TINY_NET = dict(num_types=32, hidden_channels=8, num_filters=8, num_interactions=1, num_rbf=8)


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    needles: tuple[str, ...] = ()
    subprocess: bool = False          # run as `python -m raycg ...` (parser-level errors, cheap to start)
    timeout: float = 120.0            # subprocess cases: seconds before the case counts as hung
    extra: dict = field(default_factory=dict, compare=False)


# --- bad datasets ------------------------------------------------------------------------------------
# name -> (what the error line must mention)
BAD_DATASETS = {
    "nm": ("nm",),
    "kj": ("kJ",),
    "gradients": ("gradients",),
    "nan_coords": ("frame 123",),
    "inf_forces": ("frame 77",),
    "forces_9_beads": ("9",),
    "wrong_topology": ("topology",),
    "broken_offsets": ("offset",),
    "offsets_short": ("offsets",),
    "empty": ("no frames",),
    "truncated_coords": ("coords.npy",),
    "no_meta": ("meta.json",),
    "bad_meta_json": ("meta.json",),
    "meta_9_beads": ("beads.",),
    "pickled_coords": ("coords.npy",),
    "missing": ("not found",),
}


#: datasets (built by :func:`_build_hostile_datasets`) with a FIFO in place of one file; opening it would block
FIFO_FILES = {"fifo_coords": "coords.npy", "fifo_offsets": "traj_offsets.npy", "fifo_meta": "meta.json",
              "fifo_topology": "topology.pdb"}
#: name -> what the error line must mention
HOSTILE_DATASETS = {"float_offsets": ("integers",), "whole_float_offsets": ("integers",),
                    "bool_offsets": ("integers",), "future_version": ("format_version 2", "reads (1)"),
                    "version_string": ("format_version",), "version_bool": ("format_version",),
                    "version_zero": ("format_version 0",)}


def _copy(root: Path, name: str) -> Path:
    dst = root / "ds" / name
    shutil.copytree(root / GOOD, dst)
    return dst


def _resave(root: Path, name: str, **changes) -> None:
    ds = make_dataset()
    for k, fn in changes.items():
        setattr(ds, k, fn(getattr(ds, k)))
    save(ds, root / "ds" / name)


def _set(arr: np.ndarray, index, value) -> np.ndarray:
    arr = np.array(arr)
    arr[index] = value
    return arr


def build_bad_datasets(root: Path) -> None:
    _resave(root, "nm", coords=lambda c: c / 10)
    _resave(root, "kj", forces=lambda f: f * 4.184)
    _resave(root, "gradients", forces=lambda f: -f)
    _resave(root, "nan_coords", coords=lambda c: _set(c, (123, 4, 1), np.nan))
    _resave(root, "inf_forces", forces=lambda f: _set(f, (77, 2, 0), np.inf))
    d = _copy(root, "forces_9_beads")
    np.save(d / "forces.npy", np.load(d / "forces.npy")[:, :9])
    d = _copy(root, "wrong_topology")
    good = load(root / GOOD)
    meta = good.meta.model_copy(deep=True)
    beads = meta.beads.model_copy(update={k: getattr(meta.beads, k)[:9] for k in
                                          ("names", "types", "masses", "residue_names", "residue_ids")})
    write_topology_pdb(d / "topology.pdb", beads, good.bonds[:8], np.asarray(good.coords[0, :9]))
    d = _copy(root, "broken_offsets")
    np.save(d / "traj_offsets.npy", np.array([0, 2000, 1000, 4000], np.int64))
    d = _copy(root, "offsets_short")
    np.save(d / "traj_offsets.npy", np.array([0, 1000, 3000], np.int64))
    z = np.zeros((0, 10, 3), np.float32)
    save(CGDataset(coords=z, forces=z, traj_offsets=np.zeros(1, np.int64), meta=make_dataset(40).meta),
         root / "ds" / "empty")
    d = _copy(root, "truncated_coords")
    raw = (d / "coords.npy").read_bytes()
    (d / "coords.npy").write_bytes(raw[: len(raw) // 2])
    (_copy(root, "no_meta") / "meta.json").unlink()
    d = _copy(root, "bad_meta_json")
    (d / "meta.json").write_text((d / "meta.json").read_text()[:200])
    d = _copy(root, "meta_9_beads")
    m = json.loads((d / "meta.json").read_text())
    for k in ("names", "types", "masses", "residue_names", "residue_ids"):
        m["beads"][k] = m["beads"][k][:9]
    m["bonds"] = m["bonds"][:8]
    (d / "meta.json").write_text(json.dumps(m))
    d = _copy(root, "pickled_coords")
    np.save(d / "coords.npy", np.array([{"x": 1}] * 4000, dtype=object), allow_pickle=True)
    _build_hostile_datasets(root)


def _build_hostile_datasets(root: Path) -> None:
    """Datasets with a FIFO where a file should be, non-integer offsets, and meta.json versions raycg cannot read."""
    for name, fname in FIFO_FILES.items():
        d = _copy(root, name)
        (d / fname).unlink()
        os.mkfifo(d / fname)
    for name, offsets in {"float_offsets": np.array([0, 1000.5, 2000, 3000, 4000]),
                          "whole_float_offsets": np.array([0.0, 1000.0, 2000.0, 3000.0, 4000.0]),
                          "bool_offsets": np.array([False, True])}.items():
        np.save(_copy(root, name) / "traj_offsets.npy", offsets)
    for name, version in {"future_version": 2, "version_string": "1", "version_bool": True,
                          "version_zero": 0}.items():
        d = _copy(root, name)
        m = json.loads((d / "meta.json").read_text())
        m["format_version"] = version
        (d / "meta.json").write_text(json.dumps(m))


# --- other inputs ------------------------------------------------------------------------------------
def build_models(root: Path) -> None:
    import torch

    from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel, save_model
    from raycg.priors import PriorSet

    priors = PriorSet.load(root / "priors.json")
    torch.manual_seed(0)
    net = CGSchNet(CGSchNetConfig(**TINY_NET))
    save_model(root / "model", EnergyModel(load(root / GOOD).bead_types, priors.to_module(), net), priors=priors)
    raw = (root / "model" / "network.safetensors").read_bytes()
    for name, blob in {"model_truncated": raw[: len(raw) // 2], "model_foreign": b"PK\x03\x04" + os.urandom(300),
                       "model_empty": b""}.items():
        shutil.copytree(root / "model", root / name)
        (root / name / "network.safetensors").write_bytes(blob)
    shutil.copytree(root / "model", root / "model_bad_json")
    (root / "model_bad_json" / "model.json").write_text('{"format": "raycg-model", ')
    shutil.copytree(root / "model", root / "model_bad_config")
    meta = json.loads((root / "model" / "model.json").read_text())
    meta["network_config"]["hidden_chanels"] = 3
    (root / "model_bad_config" / "model.json").write_text(json.dumps(meta))
    _hostile_models(root)


#: model directory -> (a change to model.json, what the error line must mention)
HOSTILE_MODELS = {
    "model_bead_types_null": (lambda m: m.update(bead_types=None), "bead_types"),
    "model_bead_types_str": (lambda m: m.update(bead_types="0 1 2"), "bead_types"),
    "model_bead_type_str": (lambda m: m["bead_types"].__setitem__(0, "TYR"), "bead_types.0"),
    "model_bead_type_negative": (lambda m: m["bead_types"].__setitem__(0, -1), "bead_types.0"),
    "model_version_str": (lambda m: m.update(format_version="1"), "format_version"),
    "model_version_null": (lambda m: m.update(format_version=None), "format_version"),
    "model_version_future": (lambda m: m.update(format_version=99), "newer"),
    "model_has_network_str": (lambda m: m.update(has_network="yes"), "has_network"),
    "model_net_config_str": (lambda m: m.update(network_config="big"), "network_config"),
    "model_net_config_list": (lambda m: m.update(network_config=[8, 8]), "network_config"),
    "model_hidden_null": (lambda m: m["network_config"].update(hidden_channels=None), "network_config.hidden_channels"),
    "model_hidden_list": (lambda m: m["network_config"].update(hidden_channels=[8]), "network_config.hidden_channels"),
    "model_hidden_bool": (lambda m: m["network_config"].update(hidden_channels=True), "boolean"),
    "model_extra_list": (lambda m: m.update(extra=[1]), "extra"),
}


def _hostile_models(root: Path) -> None:
    """Model directories whose model.json has a null, string or list where a number or mapping belongs."""
    meta = json.loads((root / "model" / "model.json").read_text())
    for name, (change, _) in HOSTILE_MODELS.items():
        shutil.copytree(root / "model", root / name)
        m = json.loads(json.dumps(meta))
        change(m)
        (root / name / "model.json").write_text(json.dumps(m))
    for name, blob in {"model_json_list": "[1, 2]", "model_json_deep": "[" * 100_000 + "]" * 100_000}.items():
        shutil.copytree(root / "model", root / name)
        (root / name / "model.json").write_text(blob)
    shutil.copytree(root / "model", root / "model_json_fifo")
    (root / "model_json_fifo" / "model.json").unlink()
    os.mkfifo(root / "model_json_fifo" / "model.json")


def build_inputs(root: Path) -> Path:
    """Every input the corpus reads, under ``root``."""
    from raycg.cv import fit_reference_tica
    from raycg.priors import PriorConfig, fit_priors

    root.mkdir(parents=True, exist_ok=True)
    good = make_dataset()
    save(good, root / GOOD)
    build_bad_datasets(root)
    fit_priors(good, PriorConfig(), progress=False).save(root / "priors.json")
    fit_reference_tica(good, lag=5, dim=2).save(root / "tica.npz")
    build_models(root)
    np.save(root / "traj.npy", np.asarray(good.coords[:400]).reshape(2, 200, 10, 3))
    raw = (root / "traj.npy").read_bytes()
    (root / "traj_truncated.npy").write_bytes(raw[: len(raw) // 3])
    np.save(root / "traj_9_beads.npy", np.asarray(good.coords[:400, :9]).reshape(2, 200, 9, 3))
    (root / "garbage.bin").write_bytes(os.urandom(256))
    (root / "bad.yaml").write_text("a: [1, 2\nb: }\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "unknown_field.yaml").write_text("no_such_field: 1\n")
    _torchmd_inputs(root, good)
    _train_configs(root)
    _study_specs(root)
    return root


def _torchmd_inputs(root: Path, good: CGDataset) -> None:
    d = root / "npy"
    d.mkdir()
    x, f = np.asarray(good.coords), np.asarray(good.forces)
    arrays = {"coords": x, "forces": f, "coords_nm": x / 10, "forces_kj": f * 4.184,
              "coords_nan": _set(x, (5, 3, 0), np.nan), "forces_9": f[:, :9]}
    for name, a in arrays.items():
        np.save(d / f"{name}.npy", a)
    raw = (d / "coords.npy").read_bytes()
    (d / "coords_truncated.npy").write_bytes(raw[: len(raw) // 2])
    np.save(d / "coords_pickled.npy", np.array([{"x": 1}] * 10, dtype=object), allow_pickle=True)
    os.mkfifo(d / "fifo.npy")


def _train_configs(root: Path) -> None:
    base = {"priors": "fit", "prior_config": {"bins": 40}, "out": "unused", "epochs": 1, "batch_size": 256,
            "progress": False, "model": dict(TINY_NET, hidden_channels=8)}
    for name in ["good", *BAD_DATASETS]:
        (root / f"train_{name}.yaml").write_text(yaml.safe_dump(dict(base, dataset=str(root / "ds" / name))))
    (root / "train_priors_garbage.yaml").write_text(
        yaml.safe_dump(dict(base, dataset=str(root / GOOD), priors=str(root / "garbage.bin"))))
    (root / "train_priors_missing.yaml").write_text(
        yaml.safe_dump(dict(base, dataset=str(root / GOOD), priors=str(root / "nope.json"))))
    (root / "train_unknown_field.yaml").write_text(
        yaml.safe_dump(dict(base, dataset=str(root / GOOD), epochz=2)))
    (root / "train_fifo_coords.yaml").write_text(yaml.safe_dump(dict(base, dataset=str(root / "ds" / "fifo_coords"))))


def _study_specs(root: Path) -> None:
    good = {"name": "s1", "pipeline": "toy", "grid": {"energy_weights": [0, 0.5], "seeds": 1},
            "storage": str(root / "study_storage")}
    (root / "spec_unknown_field.yaml").write_text(yaml.safe_dump(dict(good, simulaton={"replicas": 4})))
    (root / "spec_bad_value.yaml").write_text(yaml.safe_dump(dict(good, grid={"energy_weights": [], "seeds": 1})))
    (root / "spec_no_search.yaml").write_text(yaml.safe_dump(good))
    (root / "not_a_study").mkdir()
    _hostile_specs(root, good)
    _hostile_configs(root)


#: a valid spec (its storage line is appended last), for the cases that break its bytes or structure
GOOD_SPEC_TEXT = "name: s1\npipeline: toy\ngrid:\n  energy_weights: [0, 0.5]\n  seeds: 1\n"


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each level is ``width`` aliases of the one before (width**levels leaves)."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _hostile_specs(root: Path, good: dict) -> None:
    """Spec files whose bytes or structure (not only values) are wrong: encodings, nesting, aliases, keys.

    Each keeps its storage inside the corpus, so a spec wrongly accepted leaves a study there (which the
    test sees) instead of in the working directory.
    """
    _text_specs(root, f"storage: {root / 'study_storage'}\n")
    for name, section in {"bool_int": {"retries": {"max_failures": True}},
                          "bool_float": {"resources": {"cpus": True}},
                          "bool_weight": {"grid": {"energy_weights": [True, 0.5], "seeds": 1}},
                          "bool_seeds": {"grid": {"energy_weights": [0, 0.5], "seeds": True}},
                          "bool_lr": {"training": {"optim": {"lr": False}}},
                          "huge_seeds": {"grid": {"energy_weights": [0, 0.5], "seeds": 10 ** 12}},
                          "huge_sweep": {"grid": {"energy_weights": [0, 0.5], "seeds": 2, "sweep": {
                              "toy.noise": [i / 1000 for i in range(400)],
                              "training.optim.lr": [1e-4 * (i + 1) for i in range(400)]}}}}.items():
        (root / f"spec_{name}.yaml").write_text(yaml.safe_dump(dict(good, **section)))
    os.mkfifo(root / "spec_fifo.yaml")


def _text_specs(root: Path, storage: str) -> None:
    """Specs that are ``storage`` + the valid :data:`GOOD_SPEC_TEXT` with one byte- or YAML-level fault."""
    good = storage + GOOD_SPEC_TEXT
    text = GOOD_SPEC_TEXT + "description: café\n" + storage   # é at byte 83
    (root / "spec_utf16.yaml").write_bytes(text.encode("utf-16"))
    (root / "spec_utf16le.yaml").write_bytes(text.encode("utf-16-le"))
    (root / "spec_latin1.yaml").write_bytes(text.encode("latin-1"))
    (root / "spec_deep_flow.yaml").write_text(good + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    deep_block = "".join(f"{'  ' * i}k{i}:\n" for i in range(60)).replace("k0:", "training:", 1)
    (root / "spec_deep_block.yaml").write_text(good + deep_block + "  " * 60 + "x: 1\n")
    (root / "spec_alias_bomb.yaml").write_text(good + "toy:\n" + "".join(
        "  " + line + "\n" for line in _alias_bomb().splitlines()))
    (root / "spec_many_aliases.yaml").write_text(
        good.replace("[0, 0.5]", "[&w 0.5]") + "description: [" + ", ".join(["*w"] * 150) + "]\n")
    (root / "spec_dup_key.yaml").write_text(good + "name: s2\n")          # name: lines 2 and 7
    (root / "spec_dup_nested.yaml").write_text(good + "  seeds: 2\n")     # grid.seeds: lines 6 and 7


def _hostile_configs(root: Path) -> None:
    """Stage configs (train/sim/eval --config) with the same YAML-level faults as the hostile specs."""
    (root / "cfg_utf16.yaml").write_bytes("bins: 40\n".encode("utf-16"))
    (root / "cfg_dup_key.yaml").write_text("bins: 40\nbins: 50\n")
    (root / "cfg_deep.yaml").write_text("x: " + "[" * 3000 + "]" * 3000 + "\n")
    (root / "cfg_alias_bomb.yaml").write_text(_alias_bomb())


# --- the cases ---------------------------------------------------------------------------------------
def _dataset_cases() -> list[Case]:
    cases = []
    for name, needles in BAD_DATASETS.items():
        ds = f"{{root}}/ds/{name}"
        inp = (f"ds/{name}",)
        cases += [
            Case(f"data-info-{name}", ("data", "info", ds), inp, needles),
            Case(f"data-validate-{name}", ("data", "validate", ds), inp, needles),
            Case(f"priors-fit-{name}", ("priors", "fit", ds, "--out", "{out}/p.json", "--quiet"), inp, needles),
            Case(f"train-{name}", ("train", f"{{root}}/train_{name}.yaml", "--out", "{out}/run"),
                 inp + (f"train_{name}.yaml",), needles),
            Case(f"sim-run-{name}", ("sim", "run", "{root}/priors.json", "--dataset", ds, "--out", "{out}",
                                     "--n-replicas", "2", "--n-steps", "20", "--no-progress"),
                 inp + ("priors.json",), needles),
            Case(f"eval-score-{name}", ("eval", "score", ds, "{root}/traj.npy", "--tica", "{root}/tica.npz",
                                        "--out", "{out}", "--dt-frame-ps", "1"),
                 inp + ("traj.npy", "tica.npz"), needles),
        ]
    return cases


def _sim(model: str, *extra: str) -> tuple[str, ...]:
    return ("sim", "run", model, "--dataset", "{root}/ds/good", "--out", "{out}", "--n-replicas", "2",
            "--n-steps", "20", "--no-progress", *extra)


def _score(traj: str, *extra: str) -> tuple[str, ...]:
    return ("eval", "score", "{root}/ds/good", traj, "--tica", "{root}/tica.npz", "--out", "{out}",
            "--dt-frame-ps", "1", *extra)


def _tmd(coords: str, forces: str, *extra: str) -> tuple[str, ...]:
    return ("data", "import", "torchmd-cg", "--coords", f"{{root}}/npy/{coords}.npy", "--forces",
            f"{{root}}/npy/{forces}.npy", "--sequence", "YYDPETGTWY", "--frames-per-traj", "1000", "--out", "{out}",
            "--quiet", *extra)


def _other_cases() -> list[Case]:
    g, m = ("ds/good",), ("ds/good", "priors.json")
    c = [
        Case("train-bad-yaml", ("train", "{root}/bad.yaml"), ("bad.yaml",), ("YAML",)),
        Case("train-yaml-list", ("train", "{root}/list.yaml"), ("list.yaml",)),
        Case("train-unknown-field", ("train", "{root}/train_unknown_field.yaml", "--out", "{out}"),
             g + ("train_unknown_field.yaml",), ("epochz",)),
        Case("train-missing-config", ("train", "{root}/nope.yaml")),
        Case("train-device-cuda99", ("train", "{root}/train_good.yaml", "--out", "{out}", "--device", "cuda:99"),
             g + ("train_good.yaml",), ("cuda",)),
        Case("train-device-nonsense", ("train", "{root}/train_good.yaml", "--out", "{out}", "--device", "gpu0"),
             g + ("train_good.yaml",), ("gpu0",)),
        Case("train-priors-garbage", ("train", "{root}/train_priors_garbage.yaml", "--out", "{out}"),
             g + ("garbage.bin", "train_priors_garbage.yaml")),
        Case("train-priors-missing", ("train", "{root}/train_priors_missing.yaml", "--out", "{out}"),
             g + ("train_priors_missing.yaml",)),
        Case("sim-safetensors-truncated", _sim("{root}/model_truncated"), g + ("model_truncated",), ("safetensors",)),
        Case("sim-safetensors-foreign", _sim("{root}/model_foreign"), g + ("model_foreign",), ("safetensors",)),
        Case("sim-safetensors-empty", _sim("{root}/model_empty"), g + ("model_empty",), ("safetensors",)),
        Case("sim-model-json-broken", _sim("{root}/model_bad_json"), g + ("model_bad_json",), ("model.json",)),
        Case("sim-model-config-unknown", _sim("{root}/model_bad_config"), g + ("model_bad_config",),
             ("hidden_chanels",)),
        Case("sim-model-missing", _sim("{root}/nope"), g),
        Case("sim-priors-garbage", _sim("{root}/garbage.bin"), g + ("garbage.bin",), ("neither",)),
        Case("sim-device-cuda99", _sim("{root}/priors.json", "--device", "cuda:99"), m, ("cuda",)),
        Case("sim-config-bad-yaml", _sim("{root}/priors.json", "--config", "{root}/bad.yaml"), m + ("bad.yaml",)),
        Case("sim-config-unknown-field", _sim("{root}/priors.json", "--config", "{root}/unknown_field.yaml"),
             m + ("unknown_field.yaml",), ("no_such_field",)),
        Case("sim-features-truncated", _sim("{root}/priors.json", "--starts", "stratified", "--features",
                                            "{root}/traj_truncated.npy"), m + ("traj_truncated.npy",)),
        Case("eval-traj-truncated", _score("{root}/traj_truncated.npy"), g + ("traj_truncated.npy", "tica.npz")),
        Case("eval-traj-missing", _score("{root}/nope.npy"), g + ("tica.npz",)),
        Case("eval-traj-9-beads", _score("{root}/traj_9_beads.npy"), g + ("traj_9_beads.npy", "tica.npz")),
        Case("eval-tica-missing", ("eval", "score", "{root}/ds/good", "{root}/traj.npy", "--tica", "{root}/nope.npz",
                                   "--out", "{out}"), g + ("traj.npy",)),
        Case("eval-tica-garbage", ("eval", "score", "{root}/ds/good", "{root}/traj.npy", "--tica",
                                   "{root}/garbage.bin", "--out", "{out}"), g + ("traj.npy", "garbage.bin")),
        Case("eval-config-bad-yaml", _score("{root}/traj.npy", "--config", "{root}/bad.yaml"),
             g + ("traj.npy", "tica.npz", "bad.yaml")),
        Case("eval-config-unknown-field", _score("{root}/traj.npy", "--config", "{root}/unknown_field.yaml"),
             g + ("traj.npy", "tica.npz", "unknown_field.yaml"), ("no_such_field",)),
        Case("import-nm", _tmd("coords_nm", "forces"), ("npy",), ("nm", "nothing written")),
        Case("import-kj", _tmd("coords", "forces_kj"), ("npy",), ("kJ",)),
        Case("import-nan", _tmd("coords_nan", "forces"), ("npy",), ("frame 5",)),
        Case("import-9-bead-forces", _tmd("coords", "forces_9"), ("npy",)),
        Case("import-truncated", _tmd("coords_truncated", "forces"), ("npy",), ("truncated",)),
        Case("import-missing", _tmd("nope", "forces"), ("npy",)),
        Case("import-pickled", _tmd("coords_pickled", "forces"), ("npy",)),
        Case("import-wrong-sequence", ("data", "import", "torchmd-cg", "--coords", "{root}/npy/coords.npy",
                                       "--forces", "{root}/npy/forces.npy", "--sequence", "YYDPETGTW", "--out",
                                       "{out}", "--quiet"), ("npy",)),
        Case("import-length-units", _tmd("coords", "forces", "--length-units", "parsec"), ("npy",), ("parsec",)),
        Case("priors-config-bad-yaml", ("priors", "fit", "{root}/ds/good", "--out", "{out}/p.json", "--config",
                                        "{root}/bad.yaml"), g + ("bad.yaml",)),
        Case("priors-config-unknown", ("priors", "fit", "{root}/ds/good", "--out", "{out}/p.json", "--config",
                                       "{root}/unknown_field.yaml"), g + ("unknown_field.yaml",), ("no_such_field",)),
        Case("study-run-missing-spec", ("study", "run", "{root}/nope.yaml")),
        Case("study-run-bad-yaml", ("study", "run", "{root}/bad.yaml"), ("bad.yaml",)),
        Case("study-run-unknown-field", ("study", "run", "{root}/spec_unknown_field.yaml"),
             ("spec_unknown_field.yaml",), ("simulaton",)),
        Case("study-run-bad-value", ("study", "run", "{root}/spec_bad_value.yaml"), ("spec_bad_value.yaml",),
             ("energy_weights",)),
        Case("study-resume-missing", ("study", "resume", "{root}/nope_study")),
        Case("study-resume-not-a-study", ("study", "resume", "{root}/not_a_study"), ("not_a_study",)),
        Case("study-tune-no-search", ("study", "tune", "{root}/spec_no_search.yaml"), ("spec_no_search.yaml",),
             ("search",)),
        Case("study-tune-bad-yaml", ("study", "tune", "{root}/bad.yaml"), ("bad.yaml",)),
    ]
    return c + _cluster_cases() + _hostile_spec_cases() + _hostile_dataset_cases() + _hostile_model_cases()


#: subprocess timeout of a case that used to hang: far above the seconds a refusal takes
HANG_TIMEOUT = 90.0


def _spec_case(name: str, *needles: str, hang: bool = False) -> Case:
    f = f"spec_{name}.yaml"
    return Case(f"study-run-{name.replace('_', '-')}", ("study", "run", f"{{root}}/{f}"), (f,), (f, *needles),
                subprocess=hang, timeout=HANG_TIMEOUT)


def _hostile_spec_cases() -> list[Case]:
    return [
        _spec_case("utf16", "byte 0", "UTF-16", "save the file as UTF-8"),
        _spec_case("utf16le", "byte 1", "UTF-8"),
        _spec_case("latin1", "byte 83", "0xe9", "UTF-8"),
        _spec_case("deep_flow", "nested deeper than 32"),
        _spec_case("deep_block", "nested deeper than 32"),
        _spec_case("alias_bomb", "aliases expand to", hang=True),
        _spec_case("many_aliases", "more than 100 YAML aliases"),
        _spec_case("dup_key", "duplicate key 'name'", "lines 2 and 7"),
        _spec_case("dup_nested", "duplicate key 'seeds'", "lines 6 and 7"),
        _spec_case("bool_int", "retries.max_failures", "boolean"),
        _spec_case("bool_float", "resources.cpus", "boolean"),
        _spec_case("bool_weight", "grid.energy_weights", "boolean"),
        _spec_case("bool_seeds", "grid.seeds", "boolean"),
        _spec_case("bool_lr", "training.optim.lr", "boolean"),
        _spec_case("huge_seeds", "2000000000000 trials", "100000", hang=True),
        _spec_case("huge_sweep", "640000 trials", "100000", hang=True),
        Case("study-run-fifo", ("study", "run", "{root}/spec_fifo.yaml"), (), ("spec_fifo.yaml", "FIFO"),
             subprocess=True, timeout=HANG_TIMEOUT),
        Case("study-run-garbage", ("study", "run", "{root}/garbage.bin"), ("garbage.bin",), ("UTF-8",)),
        Case("study-tune-alias-bomb", ("study", "tune", "{root}/spec_alias_bomb.yaml"), ("spec_alias_bomb.yaml",),
             ("aliases expand to",), subprocess=True, timeout=HANG_TIMEOUT),
        Case("study-tune-dup-key", ("study", "tune", "{root}/spec_dup_key.yaml"), ("spec_dup_key.yaml",),
             ("duplicate key",)),
        Case("train-utf16", ("train", "{root}/cfg_utf16.yaml"), ("cfg_utf16.yaml",), ("UTF-8",)),
        Case("train-dup-key", ("train", "{root}/cfg_dup_key.yaml"), ("cfg_dup_key.yaml",), ("duplicate key 'bins'",)),
        Case("priors-config-dup-key", ("priors", "fit", "{root}/ds/good", "--out", "{out}/p.json", "--config",
                                       "{root}/cfg_dup_key.yaml"), ("ds/good", "cfg_dup_key.yaml"), ("lines 1 and 2",)),
        Case("priors-config-utf16", ("priors", "fit", "{root}/ds/good", "--out", "{out}/p.json", "--config",
                                     "{root}/cfg_utf16.yaml"), ("ds/good", "cfg_utf16.yaml"), ("UTF-8",)),
        Case("sim-config-deep", _sim("{root}/priors.json", "--config", "{root}/cfg_deep.yaml"),
             ("ds/good", "priors.json", "cfg_deep.yaml"), ("nested",)),
        Case("eval-config-alias-bomb", _score("{root}/traj.npy", "--config", "{root}/cfg_alias_bomb.yaml"),
             ("ds/good", "traj.npy", "tica.npz", "cfg_alias_bomb.yaml"), ("aliases",), subprocess=True,
             timeout=HANG_TIMEOUT),
    ]


def _hostile_dataset_cases() -> list[Case]:
    cases = []
    for name, fname in FIFO_FILES.items():
        for cmd in ("validate", "info"):
            cases.append(Case(f"data-{cmd}-{name.replace('_', '-')}", ("data", cmd, f"{{root}}/ds/{name}"),
                              (f"ds/{name}",), (fname, "FIFO"), subprocess=True, timeout=HANG_TIMEOUT))
    for name, needles in HOSTILE_DATASETS.items():
        cases.append(Case(f"data-validate-{name.replace('_', '-')}", ("data", "validate", f"{{root}}/ds/{name}"),
                          (f"ds/{name}",), needles))
    cases.append(Case("train-fifo-coords", ("train", "{root}/train_fifo_coords.yaml", "--out", "{out}/run"),
                      ("train_fifo_coords.yaml",), ("coords.npy", "FIFO"), subprocess=True, timeout=HANG_TIMEOUT))
    cases.append(Case("import-fifo-coords", _tmd("fifo", "forces"), (), ("fifo.npy",), subprocess=True,
                      timeout=HANG_TIMEOUT))
    return cases


def _hostile_model_cases() -> list[Case]:
    g = ("ds/good",)
    cases = [Case(f"sim-{name.replace('_', '-')}", _sim(f"{{root}}/{name}"), g + (name,), ("model.json", needle))
             for name, (_, needle) in HOSTILE_MODELS.items()]
    return cases + [
        Case("sim-model-json-list", _sim("{root}/model_json_list"), g + ("model_json_list",), ("not a raycg model",)),
        Case("sim-model-json-deep", _sim("{root}/model_json_deep"), g + ("model_json_deep",), ("model.json",)),
        Case("sim-model-json-fifo", _sim("{root}/model_json_fifo"), g, ("model.json", "FIFO"), subprocess=True,
             timeout=HANG_TIMEOUT),
    ]


def _cluster_cases() -> list[Case]:
    up = ("cluster", "local", "up", "--temp-dir", "{out}")
    return [
        Case("cluster-up-head-cpus-float", (*up, "--head-cpus", "1.5"), needles=("--head-cpus",), subprocess=True),
        Case("cluster-up-no-temp-dir", ("cluster", "local", "up"), needles=("--temp-dir",), subprocess=True),
        Case("cluster-up-negative-workers", (*up, "--max-workers", "-1"), needles=("--max-workers",),
             subprocess=True),
        Case("cluster-up-workers-word", (*up, "--max-workers", "two"), needles=("--max-workers",), subprocess=True),
        Case("cluster-up-unknown-flag", (*up, "--gpus", "2"), needles=("--gpus",), subprocess=True),
        Case("cluster-up-idle-negative", (*up, "--idle-timeout-minutes", "-1"), needles=("--idle-timeout",),
             subprocess=True),
        Case("cluster-down-nothing", ("cluster", "local", "down", "--temp-dir", "{root}/not_a_study"),
             ("not_a_study",), subprocess=True),
    ]


CASES = _dataset_cases() + _other_cases()
