"""The raycg energy as an OpenMM force: a picklable ``openmm.PythonForce`` computation.

OpenMM works in nm, kJ/mol, kJ/mol/nm, ps, amu (dalton), K; raycg in Å, kcal/mol, kcal/mol/Å.
:class:`OpenMMPotential` converts at this boundary only, with the factors of :mod:`raycg.units`:
positions nm → Å (× 10), energy kcal/mol → kJ/mol (× 4.184), forces kcal/mol/Å → kJ/mol/nm
(× 41.84). Masses (amu), time (ps) and temperature (K) need no conversion.

The model travels inside the pickle as data (network config + safetensors bytes, the prior
module), so an ``openmm.System`` holding it serialises to XML and is rebuilt
by ``XmlSerializer.deserialize`` in any process that has raycg installed. Deserialising runs
``pickle`` on the file: load only ``system.xml`` files you trust (as for any OpenMM PythonForce).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raycg import units as U
from raycg.errors import InputError

#: kcal/mol -> kJ/mol and kcal/mol/Å -> kJ/mol/nm (from raycg.units; no other factor is used)
KJ_PER_KCAL = U.KJ_PER_KCAL
KJ_NM_PER_KCAL_A = 1.0 / U.KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A
PACK_FORMAT = "raycg-packed-model"
PACK_VERSION = 1


def require_openmm():
    """The ``openmm`` module, or InputError (one line) when it is missing or has no PythonForce."""
    try:
        import openmm
    except ImportError:
        raise InputError(
            "OpenMM is not installed", hint="pip install 'raycg[openmm]' (openmm >= 8.1)"
        ) from None
    if not hasattr(openmm, "PythonForce"):
        raise InputError(
            f"OpenMM {getattr(openmm, '__version__', '?')} has no openmm.PythonForce",
            hint="upgrade OpenMM: pip install -U openmm",
        )
    return openmm


def as_energy_model(potential: Any):
    """An :class:`raycg.model.EnergyModel` from a model, a model directory, a PriorSet or a prior module.

    Anything else (an arbitrary callable) raises InputError: only raycg's models can be exported.
    """
    from raycg.model import EnergyModel, load_model
    from raycg.priors.energy import PriorEnergy

    if isinstance(potential, (str, os.PathLike)):
        return load_model(potential)
    if isinstance(potential, EnergyModel):
        return potential
    if isinstance(potential, PriorEnergy):
        return EnergyModel(np.zeros(potential.n_beads, np.int64), prior=potential)
    if hasattr(potential, "to_module") and hasattr(potential, "n_beads"):  # a PriorSet
        return EnergyModel(np.zeros(int(potential.n_beads), np.int64), prior=potential.to_module())
    raise InputError(
        f"cannot export a potential of type {type(potential).__name__}",
        hint="pass a raycg EnergyModel (raycg.model.load_model), a PriorSet or a model directory",
    )


# ----------------------------------------------------------------------------------------------
# the model as plain data


def _tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})


def _bytes_tensors(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(data)


def pack_model(model) -> dict[str, Any]:
    """``model`` (EnergyModel) as data: bead types, the network's config + safetensors weights, and
    the prior module itself (a CPU copy, pickled with the rest: raycg's classes must be importable
    where it is loaded, as they are wherever raycg is installed)."""
    out: dict[str, Any] = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "bead_types": [int(t) for t in model.bead_types.tolist()],
        "network": None,
        "prior": None,
    }
    net = model.network
    if net is not None:
        out["network"] = {
            "config": net.config.model_dump(mode="json"),
            "weights": _tensors_bytes(net.state_dict()),
        }
    if model.prior is not None:
        out["prior"] = {"kind": "module", "module": copy.deepcopy(model.prior).to("cpu")}
    return out


def unpack_model(data: dict[str, Any]):
    """The EnergyModel (eval mode, CPU, weights in their saved dtype) of :func:`pack_model`'s data."""
    from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel

    if not isinstance(data, dict) or data.get("format") != PACK_FORMAT:
        raise InputError("not a packed raycg model", where="raycg.export")
    if data.get("version") != PACK_VERSION:
        raise InputError(
            f"packed model version {data.get('version')!r} is not supported (this raycg reads "
            f"{PACK_VERSION})",
            where="raycg.export",
            hint="export the model again with this raycg",
        )
    network = None
    if data["network"] is not None:
        state = _bytes_tensors(data["network"]["weights"])
        network = CGSchNet(CGSchNetConfig.model_validate(data["network"]["config"]))
        dtype = next(iter(state.values())).dtype if state else torch.float32
        network = network.to(dtype)
        network.load_state_dict(state, strict=True)
    prior = None if data["prior"] is None else copy.deepcopy(data["prior"]["module"])
    return EnergyModel(data["bead_types"], prior=prior, network=network).eval()


# ----------------------------------------------------------------------------------------------
# the PythonForce computation


class OpenMMPotential:
    """``openmm.PythonForce`` computation: ``state -> (energy kJ/mol, forces [B, 3] kJ/mol/nm)``.

    The energy is the whole raycg energy (prior + network) of the model, evaluated in ``dtype`` on
    ``device`` by raycg's own pass (:meth:`raycg.model.EnergyModel.simulation_forces`): the exact
    filter networks (``table_spacing_A=None``) or a :class:`raycg.model.FilterTable` of that
    spacing (Å), as raycg's engine uses. Picklable (see the module docstring).
    """

    def __init__(
        self,
        model,
        *,
        dtype: str = "float32",
        table_spacing_A: float | None = None,
        device: str = "cpu",
    ) -> None:
        if dtype not in ("float32", "float64"):
            raise InputError(
                f"dtype must be float32 or float64, got {dtype!r}", where="raycg.export"
            )
        model = as_energy_model(model)
        self._setup(
            {
                "model": pack_model(model),
                "dtype": dtype,
                "table_spacing_A": table_spacing_A,
                "device": device,
            }
        )

    def _setup(self, state: dict[str, Any]) -> None:
        self._state = state
        self.dtype = state["dtype"]
        self.table_spacing_A = state["table_spacing_A"]
        self.device = state.get("device", "cpu")
        self.n_beads = len(state["model"]["bead_types"])
        self._model = None
        self._fn = None
        #: why this computation cannot run (a system.xml of another raycg version), else None
        self.error: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"version": PACK_VERSION, **self._state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Never raises: an exception inside ``XmlSerializer.deserialize`` crashes OpenMM (8.6:
        a segmentation fault). A state of another version is kept as :attr:`error`; evaluating it
        raises that (one line), and :func:`read_system_xml` refuses the file before any Context."""
        state = dict(state)
        version = state.pop("version", None)
        try:
            if version != PACK_VERSION:
                raise ValueError
            self._setup(state)
        except (KeyError, TypeError, ValueError):
            self._state, self._model, self._fn, self.n_beads = state, None, None, None
            self.error = (f"this system.xml was written by a raycg with PythonForce format version "
                          f"{version!r}; this raycg reads version {PACK_VERSION}" if version != PACK_VERSION
                          else "this system.xml's raycg PythonForce is incomplete (edited or damaged)")

    def _require_ok(self) -> None:
        if self.error is not None:
            raise InputError(self.error, where="raycg.export",
                             hint="export the model again with this raycg (raycg export MODEL ...)")

    @property
    def model(self):
        """The EnergyModel evaluated (built on first use, in ``dtype`` on ``device``)."""
        self._require_ok()
        if self._model is None:
            dt = torch.float64 if self.dtype == "float64" else torch.float32
            self._model = unpack_model(self._state["model"]).to(device=self.device, dtype=dt)
        return self._model

    def energy_and_forces_A(
        self, pos_A: np.ndarray | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """raycg units: positions [R, B, 3] Å -> (energy [R] kcal/mol, forces [R, B, 3] kcal/mol/Å)."""
        self._require_ok()
        if self._fn is None:
            self._fn = self.model.simulation_forces(
                compile=False, table_spacing_A=self.table_spacing_A, pair_block=None
            )
        dt = torch.float64 if self.dtype == "float64" else torch.float32
        x = torch.as_tensor(pos_A).to(device=self.device, dtype=dt)
        with torch.no_grad():
            return self._fn(x)

    def energy_and_forces_nm(self, pos_nm: np.ndarray) -> tuple[float, np.ndarray]:
        """OpenMM units: positions [B, 3] nm -> (energy kJ/mol, forces [B, 3] kJ/mol/nm, float64)."""
        self._require_ok()
        pos = np.asarray(pos_nm, dtype=np.float64).reshape(1, self.n_beads, 3) * U.NM_TO_ANGSTROM
        e, f = self.energy_and_forces_A(pos)
        forces = f[0].detach().to("cpu", torch.float64).numpy() * KJ_NM_PER_KCAL_A
        return float(e[0]) * KJ_PER_KCAL, forces

    def __call__(self, state) -> tuple[float, np.ndarray]:
        pos = state.getPositions(asNumpy=True)
        return self.energy_and_forces_nm(getattr(pos, "_value", pos))  # a Quantity in nm


def to_openmm(
    model,
    masses=None,
    *,
    dataset=None,
    dtype: str = "float32",
    table_spacing_A: float | None = None,
    device: str = "cpu",
):
    """An ``openmm.System``: one particle per bead with its mass (amu) and the whole raycg energy
    (prior + network) as one ``openmm.PythonForce`` named ``raycg`` (kJ/mol, kJ/mol/nm; no periodic
    box). ``model``: an EnergyModel, a model directory, a PriorSet or a prior module. ``masses`` [B]
    amu, or ``dataset`` (a CGDataset or its path) to take them from.
    """
    openmm = require_openmm()
    model = as_energy_model(model)
    if masses is None and dataset is not None:
        if isinstance(dataset, (str, os.PathLike)):
            from raycg.data.format import load

            dataset = load(dataset)
        masses = dataset.masses
    if masses is None:
        raise InputError(
            "to_openmm needs the bead masses", hint="pass masses=[amu per bead] or dataset="
        )
    m = np.asarray(masses, dtype=np.float64).reshape(-1)
    if m.shape != (model.n_beads,):
        raise InputError(
            f"the model has {model.n_beads} beads but {m.size} masses were given",
            where="to_openmm",
            hint="use the dataset the model was trained on",
        )
    if not np.all(np.isfinite(m) & (m > 0)):
        raise InputError(
            f"masses must be finite and > 0 amu (bead {int(np.argmin(m))})", where="to_openmm"
        )
    system = openmm.System()
    for mass in m:
        system.addParticle(float(mass))
    force = openmm.PythonForce(
        OpenMMPotential(model, dtype=dtype, table_spacing_A=table_spacing_A, device=device)
    )
    force.setName("raycg")
    force.setUsesPeriodicBoundaryConditions(False)
    system.addForce(force)
    return system


def read_system_xml(path: str | os.PathLike, *, sha256: str):
    """The ``openmm.System`` of a ``system.xml`` raycg wrote (``XmlSerializer.deserialize``).

    The file holds a pickle (the PythonForce's function), and unpickling runs code: it is read only
    when its sha256 is ``sha256``, the digest of the bytes raycg wrote, so a system.xml from anywhere
    else is refused (one InputError line) before anything is unpickled. Refused likewise when it is
    unreadable, or when the pickled function does not load here or is raycg's of another format
    version: checked before OpenMM deserialises it (OpenMM does not survive an unpickling error)."""
    import hashlib
    import pickle
    import xml.etree.ElementTree as ET

    openmm = require_openmm()
    hint = "export the model again with this raycg (raycg export MODEL ...)"
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: not a readable OpenMM system XML ({type(exc).__name__})",
                         hint="pass the system.xml raycg export wrote") from None
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise InputError(f"{path}: not the system.xml raycg wrote (sha256 differs), so raycg will not unpickle "
                         "its PythonForce (a pickle runs code)", hint=hint)
    try:
        text = raw.decode("utf-8")
        root = ET.fromstring(text)
    except (OSError, UnicodeDecodeError, ET.ParseError) as exc:
        raise InputError(f"{path}: not a readable OpenMM system XML ({type(exc).__name__})",
                         hint="pass the system.xml raycg export wrote") from None
    for el in root.iter("Force"):
        data = el.get("function")
        if not data:
            continue
        try:
            fn = pickle.loads(bytes.fromhex(data))
        except Exception as exc:  # noqa: BLE001 - a class missing here, a truncated pickle, ...
            raise InputError(f"{path}: its PythonForce function does not load here ({type(exc).__name__}: "
                             f"{(str(exc).splitlines() or [''])[0][:120]})", where="raycg.export",
                             hint=hint) from None
        if isinstance(fn, OpenMMPotential) and fn.error is not None:
            raise InputError(f"{path}: {fn.error}", where="raycg.export", hint=hint)
    try:
        return openmm.XmlSerializer.deserialize(text)
    except Exception as exc:  # noqa: BLE001 - OpenMM's parser raises its own exception types
        first = (str(exc).splitlines() or [""])[0][:160]
        raise InputError(f"{path}: not an OpenMM system XML ({first})",
                         hint="pass the system.xml raycg export wrote") from None
