"""Inputs checked at the boundary: the --device a command asks for, and model files (load_model)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from raycg.cli.common import check_device
from raycg.errors import InputError


def test_check_device():
    check_device("cpu")
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        check_device("gpu0")
    with pytest.raises(InputError, match="cuda:99"):
        check_device("cuda:99", where="t.yaml: device")
    if torch.cuda.is_available():
        check_device("cuda")
    else:
        with pytest.raises(InputError, match="CUDA is not available"):
            check_device("cuda")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel, save_model

    torch.manual_seed(0)
    net = CGSchNet(CGSchNetConfig(num_types=4, hidden_channels=8, num_filters=8, num_interactions=1, num_rbf=8))
    return save_model(tmp_path_factory.mktemp("m") / "model", EnergyModel([0, 1, 2, 3], None, net))


@pytest.mark.parametrize("name, edit, needle", [
    ("truncated", lambda d: (d / "network.safetensors").write_bytes((d / "network.safetensors").read_bytes()[:99]),
     "not a readable safetensors file"),
    ("foreign", lambda d: torch.save({"w": torch.zeros(3)}, d / "network.safetensors"),
     "not a readable safetensors file"),
    ("empty", lambda d: (d / "network.safetensors").write_bytes(b""), "not a readable safetensors file"),
    ("config", lambda d: (d / "model.json").write_text(json.dumps(
        dict(json.loads((d / "model.json").read_text()), network_config={"num_rbf": -1}))), "network_config"),
    ("types", lambda d: (d / "model.json").write_text(json.dumps(
        dict(json.loads((d / "model.json").read_text()), bead_types=None))), "bead_types"),
])
def test_load_model_bad_files_one_line(model_dir, tmp_path, name, edit, needle):
    from raycg.model import load_model

    d = shutil.copytree(model_dir, tmp_path / name)
    load_model(d)
    edit(d)
    with pytest.raises(InputError) as err:
        load_model(d)
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)
