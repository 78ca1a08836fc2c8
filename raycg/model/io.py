"""Model files: weights (safetensors) + network config + priors JSON + raycg version.

Layout of a model directory (written atomically)::

    MODEL/
      model.json            format, raycg version, network config, bead types, extra info
      network.safetensors   CGSchNet weights (absent for a prior-only model)
      priors.json           the PriorSet (absent for a network-only model)

:func:`load_model` rebuilds an :class:`~raycg.model.energy.EnergyModel` from these files alone
(no training code, no pickle).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

import raycg
from raycg.errors import InputError
from raycg.model.energy import EnergyModel
from raycg.model.schnet import CGSchNet, CGSchNetConfig
from raycg.utils.io import atomic_directory, to_json

FORMAT_NAME = "raycg-model"
FORMAT_VERSION = 1


def save_model(path: str | os.PathLike, model: EnergyModel, config: CGSchNetConfig | None = None,
               priors: Any = None, extra: dict[str, Any] | None = None, *, overwrite: bool = True) -> Path:
    """Write ``model`` to the directory ``path`` (atomically).

    ``config`` defaults to the network's own config; ``priors`` is the PriorSet (anything with
    ``save(path)``) or a path to a priors JSON file; it is required when the model has a prior.
    """
    from safetensors.torch import save_file

    path = Path(path)
    net = model.network
    if config is None and net is not None:
        config = net.config
    if model.prior is not None and priors is None:
        priors = getattr(model.prior, "prior_set", None)
        if priors is None:
            raise InputError("save_model: the model has a prior but no PriorSet was given",
                             hint="pass priors=<the PriorSet the prior module was made from>")
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "raycg_version": raycg.__version__,
        "network_config": None if net is None else config.model_dump(mode="json"),
        "bead_types": [int(t) for t in model.bead_types.tolist()],
        "has_network": net is not None,
        "has_prior": priors is not None,
        "extra": extra or {},
    }
    with atomic_directory(path, overwrite=overwrite) as tmp:
        if net is not None:
            state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
            save_file(state, str(tmp / "network.safetensors"), metadata={"format": FORMAT_NAME})
        if priors is not None:
            if isinstance(priors, (str, os.PathLike)):
                shutil.copyfile(priors, tmp / "priors.json")
            else:
                priors.save(tmp / "priors.json")
        (tmp / "model.json").write_text(to_json(meta) + "\n")
    return path


def read_model_meta(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    f = path / "model.json"
    if not f.is_file():
        raise InputError(f"{f} is missing", hint="is this a raycg model directory (written by save_model)?")
    try:
        meta = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{f}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if meta.get("format") != FORMAT_NAME:
        raise InputError(f"{f}: not a raycg model file (format={meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(f"{f}: model format version {meta['format_version']} is newer than this raycg "
                         f"understands ({FORMAT_VERSION})", hint="upgrade raycg")
    return meta


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None) -> EnergyModel:
    """Rebuild an EnergyModel (eval mode) from a directory written by :func:`save_model`.

    Malformed files (truncated or foreign weights, a broken config) raise InputError with one line.
    """
    path = Path(path)
    meta = read_model_meta(path)
    if not isinstance(meta.get("bead_types"), list):
        raise InputError(f"{path / 'model.json'}: bead_types missing or not a list", hint="re-save the model")
    network = _load_network(path, meta) if meta.get("has_network") else None
    prior = None
    if meta.get("has_prior"):
        from raycg.priors import PriorSet

        prior_set = PriorSet.load(path / "priors.json")
        prior = prior_set.to_module()
    model = EnergyModel(meta["bead_types"], prior=prior, network=network)
    if dtype is not None:
        model = model.to(dtype=dtype)
    return model.to(device).eval()


def _load_network(path: Path, meta: dict[str, Any]) -> CGSchNet:
    """The CGSchNet of a model directory: config from model.json, weights from network.safetensors."""
    from pydantic import ValidationError
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        cfg = CGSchNetConfig.model_validate(meta.get("network_config"))
    except ValidationError as err:
        from raycg.config import format_validation_error

        raise InputError(format_validation_error(err, str(path / "model.json"), prefix="network_config"),
                         hint="the model was written by another raycg version or edited; re-save it") from None
    network = CGSchNet(cfg)
    wfile = path / "network.safetensors"
    if not wfile.is_file():
        raise InputError(f"{wfile} is missing", hint="the model directory is incomplete; re-save it")
    try:
        state = load_file(str(wfile), device="cpu")
    except (SafetensorError, OSError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{wfile}: not a readable safetensors file ({first})",
                         hint="the weights are truncated or not raycg's; copy or re-save the model") from None
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"{wfile}: weights do not match the saved config ({first})") from None
    return network
