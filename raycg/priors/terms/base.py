"""The :class:`Term` base class and the registry from a kind name to its class.

A term class is one kind of energy term over ``N`` index tuples ``atoms[N, arity]`` with
per-term parameters (kcal/mol, Å, rad). It states its features, its energy (and analytic forces
where it has them), how it is chosen from a topology and fitted by Boltzmann inversion, and its
parameter schema (``param_names``, each an array with one row per term) for save and load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from raycg.errors import InputError
from raycg.priors.geometry import term_index

if TYPE_CHECKING:
    from raycg.priors.config import PriorConfig
    from raycg.priors.terms.boltzmann import Histogram
    from raycg.priors.topology import PriorTopology

#: kind name -> term class, in registration order
TERMS: dict[str, type[Term]] = {}


def register_term(cls: type[Term]) -> type[Term]:
    """Class decorator: make ``cls`` known under ``cls.kind`` (to config, fit, files and energy)."""
    if not cls.kind or TERMS.get(cls.kind, cls) is not cls:
        raise ValueError(f"term kind {cls.kind!r} is empty or already registered")
    TERMS[cls.kind] = cls
    return cls


def term_class(kind: str, where: str = "priors") -> type[Term]:
    """The registered class of ``kind``; InputError naming the known kinds otherwise."""
    if kind not in TERMS:
        raise InputError(f"unknown term kind {kind!r}", where=where,
                         hint=f"kinds are {list(TERMS)} (import a custom term's module first)")
    return TERMS[kind]


def column(a: Any) -> Tensor:
    """Per-term parameter ``[N]`` -> float64 ``[N, 1]`` (broadcasts against features ``[N, R]``)."""
    return torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(-1, 1))


class Term(nn.Module):
    """One kind of energy term (subclass, set the class attributes, decorate with
    :func:`register_term`).

    ``energy(P, F=None) -> [R]`` kcal/mol for coordinate-major positions ``P[3, B, R]`` Å
    (:mod:`raycg.priors.geometry`); with ``analytic`` it adds its forces −∂E/∂P into ``F[3, B, R]``
    when ``F`` is given. ``term_energies(P) -> [N, R]``. Parameters are float64 buffers cast to
    the dtype/device of ``P`` on use. A fittable class implements :meth:`select`,
    :meth:`features`, :meth:`jacobian` and :meth:`fit`.
    """

    kind: ClassVar[str] = ""
    arity: ClassVar[int] = 2
    #: parameter schema: names of the per-term arrays (files and :meth:`from_params`)
    param_names: ClassVar[tuple[str, ...]] = ()
    noun: ClassVar[str] = "term"            # one term, in messages ("bond 3-4 ...")
    unit: ClassVar[str] = "A"               # unit of the feature: "A", "rad" or ""
    axis_label: ClassVar[str] = "x"
    energy_form: ClassVar[str] = ""
    analytic: ClassVar[bool] = False
    periodic: ClassVar[bool] = False
    #: feature bounds (histogram ranges are clipped to them)
    domain: ClassVar[tuple[float, float]] = (0.0, float("inf"))

    def __init__(self, atoms: np.ndarray | Tensor):
        super().__init__()
        self.register_buffer("idx", term_index(atoms, self.arity))

    @property
    def n_terms(self) -> int:
        return int(self.idx.shape[1])

    def extra_repr(self) -> str:
        return f"{self.kind}: {self.n_terms} terms"

    def param(self, name: str, like: Tensor) -> Tensor:
        """Buffer ``name`` in the dtype and on the device of ``like``."""
        return getattr(self, name).to(like)

    # -- energy ---------------------------------------------------------------------------
    def term_energies(self, P: Tensor) -> Tensor:
        """Energy of every term ``[N, R]`` kcal/mol."""
        return self._energies(P, None)

    def energy(self, P: Tensor, F: Tensor | None = None) -> Tensor:
        """Energy ``[R]`` kcal/mol; adds analytic forces into ``F`` (only with ``analytic``)."""
        return self._energies(P, F).sum(0)

    def forward(self, P: Tensor) -> Tensor:
        return self.energy(P)

    def _energies(self, P: Tensor, F: Tensor | None) -> Tensor:
        raise NotImplementedError

    # -- files ----------------------------------------------------------------------------
    @classmethod
    def from_params(cls, atoms: np.ndarray, params: dict[str, np.ndarray]) -> Term:
        """The module of terms ``atoms[N, arity]`` with the schema's parameters."""
        return cls(atoms, **{name: params[name] for name in cls.param_names})

    @classmethod
    def check_params(cls, params: dict[str, np.ndarray], n: int,
                     config: PriorConfig) -> dict[str, np.ndarray]:
        """Loaded parameters (each ``[n, ...]``, finite) in the shapes :meth:`from_params` takes."""
        return params

    @classmethod
    def params_from_buffers(cls, buffers: dict[str, Tensor]) -> dict[str, np.ndarray]:
        """The schema's parameters from a module's buffers (inverse of :meth:`from_params`)."""
        return {name: buffers[name].detach().cpu().numpy() for name in cls.param_names}

    @classmethod
    def from_buffers(cls, buffers: dict[str, Tensor]) -> Term:
        """The module of a :meth:`state_dict` (``idx`` and the buffers, restored exactly)."""
        term = cls.from_params(buffers["idx"].T.cpu().numpy(), cls.params_from_buffers(buffers))
        term.load_state_dict(buffers, strict=True)
        return term

    # -- fitting --------------------------------------------------------------------------
    @classmethod
    def select(cls, topology: PriorTopology, config: PriorConfig) -> np.ndarray:
        """This kind's terms ``atoms[N, arity]`` in a topology."""
        raise InputError(f"{cls.kind} terms are not chosen from a bonded topology: no fit")

    @classmethod
    def features(cls, P: Tensor, idx: Tensor) -> Tensor:
        """The coordinate the energy depends on, ``[N, R]`` (units ``unit``)."""
        raise NotImplementedError

    @classmethod
    def jacobian(cls, x: np.ndarray) -> np.ndarray:
        """Volume element J(x) of the feature (p(x) of an unbiased system ∝ J(x))."""
        return np.ones_like(x)

    @classmethod
    def grouping(cls, config: PriorConfig) -> str:
        """How terms share parameters: "term", "bead_types" or "all"."""
        return config.grouping

    @classmethod
    def pooled_label(cls) -> str:
        return f"all {cls.kind}"

    @classmethod
    def n_bins(cls, config: PriorConfig, bins: int) -> int:
        return bins

    @classmethod
    def histogram_range(cls, gmin: np.ndarray, gmax: np.ndarray,
                        config: PriorConfig) -> tuple[np.ndarray, np.ndarray]:
        """Per-group histogram range from the sampled span, padded and clipped to ``domain``;
        raises :class:`~raycg.priors.terms.boltzmann.ConstantFeature` for a constant group."""
        from raycg.priors.terms.boltzmann import ConstantFeature

        span = gmax - gmin
        flat = span <= 1e-9 * np.maximum(1.0, np.abs(gmax))
        if flat.any():
            raise ConstantFeature(int(np.flatnonzero(flat)[0]))
        lo, hi = gmin - config.range_padding * span, gmax + config.range_padding * span
        lo = np.maximum(lo, cls.domain[0])
        if np.isfinite(cls.domain[1]):
            hi = np.minimum(hi, cls.domain[1])
        return lo, hi

    @classmethod
    def fit(cls, hist: Histogram, kbt: float, config: PriorConfig) -> dict[str, Any]:
        """Fit one parameter group to its histogram at k_BT (kcal/mol): a dict with ``params``,
        ``method``, ``n_fit_bins``, ``note`` and the residual statistics (TermFit fields)."""
        raise InputError(f"{cls.kind} terms have no fit")

    # -- display --------------------------------------------------------------------------
    @classmethod
    def curve(cls, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        """Energy (kcal/mol) of one group's parameters at feature values ``x`` (numpy)."""
        raise NotImplementedError

    @classmethod
    def plot_marker(cls, params: dict[str, Any]) -> float | None:
        """A feature value to mark and align the data at in plots (None: best constant)."""
        return None

    @classmethod
    def summary(cls, params: dict[str, Any]) -> str:
        """One group's parameters as text (``raycg priors show``)."""
        return "  ".join(f"{k}={v}" for k, v in params.items())

    @classmethod
    def title(cls, params: dict[str, Any]) -> str:
        """One group's parameters, short (plot titles)."""
        return cls.summary(params)
