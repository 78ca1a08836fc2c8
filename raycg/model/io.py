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
from typing import TYPE_CHECKING, Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import raycg
from raycg.errors import InputError
from raycg.model.energy import EnergyModel
from raycg.model.schnet import CGSchNet, CGSchNetConfig
from raycg.utils.io import atomic_directory, not_regular_file, to_json

if TYPE_CHECKING:
    from raycg.priors.prior_set import PriorSet

FORMAT_NAME = "raycg-model"
FORMAT_VERSION = 1


def save_model(path: str | os.PathLike, model: EnergyModel, config: CGSchNetConfig | None = None,
               priors: PriorSet | None = None, extra: dict[str, Any] | None = None, *, overwrite: bool = True) -> Path:
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


class ModelMeta(BaseModel):
    """The fields of ``model.json``, each type-checked strictly (no ``"3"`` or ``true`` for a number).

    Unknown fields are kept (a newer raycg of the same format version may add some).
    """

    model_config = ConfigDict(extra="allow", strict=True)

    format: str
    format_version: int = Field(ge=1)
    raycg_version: str = ""
    network_config: dict[str, Any] | None = None
    bead_types: list[Annotated[int, Field(ge=0)]]
    has_network: bool = False
    has_prior: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)


def _read_json(f: Path) -> Any:
    problem = not_regular_file(f)
    if problem == "not found":
        raise InputError(f"{f} is missing", hint="is this a raycg model directory (written by save_model)?")
    if problem is not None:
        raise InputError(f"{f}: {problem}", hint="model.json must be a JSON file")
    try:
        return json.loads(f.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = f"{exc.msg} at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise InputError(f"{f}: not valid JSON ({detail})") from None
    except RecursionError:
        raise InputError(f"{f}: not valid JSON (nested too deeply)") from None


def read_model_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping in ``MODEL/model.json``, every field type-checked; InputError naming the field otherwise."""
    f = Path(path) / "model.json"
    meta = _read_json(f)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise InputError(f"{f}: not a raycg model file (format={found!r})")
    version = meta.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise InputError(f"{f}: model format version {version} is newer than this raycg "
                         f"understands ({FORMAT_VERSION})", hint="upgrade raycg")
    try:
        ModelMeta.model_validate(meta)
    except ValidationError as err:
        from raycg.config import format_validation_error

        raise InputError(format_validation_error(err, str(f)), hint="re-save the model") from None
    return meta


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None) -> EnergyModel:
    """Rebuild an EnergyModel (eval mode) from a directory written by :func:`save_model`.

    Malformed files (truncated or foreign weights, a broken config) raise InputError with one line.
    """
    path = Path(path)
    meta = read_model_meta(path)
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
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from raycg.config import validate_config
    from raycg.errors import ConfigError

    try:
        cfg = validate_config(CGSchNetConfig, meta.get("network_config"), source=str(path / "model.json"),
                              prefix="network_config")
    except ConfigError as exc:
        raise InputError(str(exc),
                         hint="the model was written by another raycg version or edited; re-save it") from None
    network = CGSchNet(cfg)
    wfile = path / "network.safetensors"
    problem = not_regular_file(wfile)
    if problem is not None:
        raise InputError(f"{wfile} is missing" if problem == "not found" else f"{wfile}: {problem}",
                         hint="the model directory is incomplete; re-save it")
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
