import json

import numpy as np
import pytest

from raycg._testing.datasets import two_state_dataset
from raycg.cli import main
from raycg.data.format import save


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("evalcli")
    ds, _ = two_state_dataset(n_traj=4, length=600, seed=21, name="ref")
    save(ds, d / "ref")
    other, _ = two_state_dataset(n_traj=2, length=300, seed=22, name="other")
    save(other, d / "other")
    model, _ = two_state_dataset(n_traj=2, length=400, seed=23)
    np.save(d / "model.npy", np.asarray(model.coords).reshape(2, 400, 10, 3))
    return d


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_tica_then_score(files, capsys):
    d = files
    assert main(["eval", "tica", str(d / "ref"), "--lag", "20", "--out", str(d / "tica.npz")]) == 0
    out = capsys.readouterr().out
    assert "implied timescale" in out and "lag 20 frames" in out
    assert (d / "tica.npz").is_file() and (d / "tica.json").is_file()
    rc = main(["eval", "score", str(d / "ref"), str(d / "model.npy"), "--tica", str(d / "tica.npz"),
               "--out", str(d / "trial"), "--dt-frame-ps", "1.0"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "kl_ref_model" in out and "w1" in out
    doc = json.loads((d / "trial" / "scores.json").read_text())
    assert np.isfinite(doc["metrics"]["transition_rate_per_ns_model"])
    assert (d / "trial" / "fes.npz").is_file()


def test_bad_inputs_exit_2_with_one_line(files, capsys, tmp_path):
    d = files
    if not (d / "tica.npz").exists():
        main(["eval", "tica", str(d / "ref"), "--out", str(d / "tica.npz")])
    main(["eval", "tica", str(d / "other"), "--lag", "5", "--out", str(tmp_path / "other.npz")])
    capsys.readouterr()
    base = ["eval", "score", str(d / "ref")]
    # TICA file from another dataset
    assert main(base + [str(d / "model.npy"), "--tica", str(tmp_path / "other.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "another dataset" in _one_error_line(capsys)
    # trajectory with a different bead count
    np.save(tmp_path / "b12.npy", np.zeros((5, 12, 3), np.float32))
    assert main(base + [str(tmp_path / "b12.npy"), "--tica", str(d / "tica.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "12 beads" in _one_error_line(capsys)
    # empty trajectory
    np.save(tmp_path / "empty.npy", np.zeros((0, 10, 3), np.float32))
    assert main(base + [str(tmp_path / "empty.npy"), "--tica", str(d / "tica.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "no frames" in _one_error_line(capsys)
    # all replicas blown up
    sim = tmp_path / "sim"
    sim.mkdir()
    (sim / "replicas.json").write_text(json.dumps({
        "n_replicas": 2, "n_beads": 10, "blown_up": [{"replica": 0, "step": 5, "reason": "nan"},
                                                     {"replica": 1, "step": 9, "reason": "bond"}]}))
    assert main(base + [str(sim), "--tica", str(d / "tica.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "all 2 replicas blew up" in _one_error_line(capsys)
    # a bad config value names the field
    assert main(base + [str(d / "model.npy"), "--tica", str(d / "tica.npz"), "--out", str(tmp_path / "o"),
                        "--burn-in", "1.5"]) == 2
    assert "burn_in_fraction" in _one_error_line(capsys)
    # a lag longer than every trajectory
    assert main(["eval", "tica", str(d / "other"), "--lag", "1000", "--out", str(tmp_path / "x.npz")]) == 2
    assert "longer than the TICA lag" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_yaml_config_section_and_line_numbers(tmp_path):
    from raycg.cli.evaluate import load_eval_config
    from raycg.errors import ConfigError

    good = tmp_path / "good.yaml"
    good.write_text("evaluate:\n  bins: 40\n  burn_in_fraction: 0.2\n")
    cfg = load_eval_config(str(good), {"bins": 30, "folded_rmsd_A": None})
    assert (cfg.bins, cfg.burn_in_fraction, cfg.folded_rmsd_A) == (30, 0.2, 1.5)  # command line wins
    bad = tmp_path / "bad.yaml"
    bad.write_text("bins: 60\nkl_epsilon: 0.5\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: kl_epsilon"):
        load_eval_config(str(bad), {})
    typo = tmp_path / "typo.yaml"
    typo.write_text("evaluate:\n  binz: 60\n")
    with pytest.raises(ConfigError, match=r"typo.yaml:2: binz: unknown field"):
        load_eval_config(str(typo), {})
