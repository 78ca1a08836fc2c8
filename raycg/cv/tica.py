"""The reference TICA: fitted once on the reference dataset (deeptime), reused by train and evaluate.

Fitting follows deeptime/PyEMMA practice: time-lagged pairs ``(x_t, x_{t+τ})`` are formed *inside*
each trajectory only (never across a trajectory boundary), the covariances are accumulated chunk by
chunk with ``deeptime.covariance.Covariance`` (mean removed, reversible/symmetrised, optional
per-frame weights ``w_t`` on the pair starting at ``t``), and ``deeptime.decomposition.TICA`` is fitted
from those covariances (kinetic-map scaling by default, as deeptime's default). Trajectories not
longer than the lag contribute no pair; they are skipped and counted.

The saved file is a small versioned ``.npz`` (no pickle) holding the covariances, the projection
(mean and coefficients) and a JSON header; a readable ``.json`` sidecar with the same header is
written next to it. Loading rebuilds a deeptime ``CovarianceKoopmanModel`` from the stored
covariances, so ``ReferenceTICA.load(path).deeptime_model`` is a real deeptime object.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raycg.cv.features import (
    DEFAULT_CHUNK_FRAMES,
    check_feature_kind,
    feature_dim,
    featurize,
    featurize_torch,
)
from raycg.errors import DatasetError, InputError
from raycg.utils.io import atomic_path, atomic_write_json

if TYPE_CHECKING:
    from torch import Tensor

    from raycg.data.format import CGDataset

FORMAT_NAME = "raycg-reference-tica"
FORMAT_VERSION = 1

#: Rows of lagged pairs accumulated before one covariance update (bounds memory for any data size).
FIT_CHUNK_ROWS = 262144


def single_thread_blas():
    """Context limiting BLAS to one thread. The matrices here are tall and thin (features ≤ a few
    hundred): one thread is as fast as several, and on a shared, oversubscribed machine a multi-threaded
    OpenBLAS was measured 40x slower for the same ``X.T @ X`` (threadpoolctl ships with deeptime)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class ReferenceTICA:
    """A TICA fitted on the reference dataset; projects CG coordinates onto its components.

    ``coefficients`` ``[n_features, dim]`` and ``mean`` ``[n_features]`` define the projection
    ``y = (features(x) - mean) @ coefficients`` (exactly deeptime's ``model.transform``).
    ``eigenvalues`` are all TICA eigenvalues (autocorrelations at the lag, length = rank), sorted
    by decreasing absolute value; ``dim`` is the number of stored components.
    """

    lag: int
    feature_kind: str
    n_beads: int
    dataset_hash: str
    mean: np.ndarray
    coefficients: np.ndarray
    eigenvalues: np.ndarray
    dt_frame_ps: float
    cov_00: np.ndarray
    cov_0t: np.ndarray
    mean_0: np.ndarray
    mean_t: np.ndarray
    scaling: str | None = "kinetic_map"
    epsilon: float = 1e-6
    dim_requested: int | None = None
    var_cutoff: float | None = None
    temperature_K: float | None = None
    dataset_name: str = ""
    n_trajectories_used: int = 0
    n_trajectories_skipped: int = 0
    n_pairs: int = 0
    weighted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    _model: Any = field(default=None, repr=False)
    _torch_cache: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return (f"ReferenceTICA(feature_kind={self.feature_kind!r}, n_beads={self.n_beads}, lag={self.lag}, "
                f"dim={self.dim}, dt_frame_ps={self.dt_frame_ps:g}, dataset_hash={self.dataset_hash[:19]!r}...)")

    # --- properties -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.coefficients.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.coefficients.shape[0])

    @property
    def timescales_ps(self) -> np.ndarray:
        """Implied timescales ``t_i = -τ·Δt / ln|λ_i|`` in ps (τ = lag in frames, Δt = frame spacing)."""
        lam = np.abs(np.asarray(self.eigenvalues, dtype=np.float64))
        with np.errstate(divide="ignore"):
            ts = -self.lag * self.dt_frame_ps / np.log(np.clip(lam, 1e-300, None))
        return np.where(lam >= 1.0, np.inf, ts)

    @property
    def lag_ps(self) -> float:
        return float(self.lag * self.dt_frame_ps)

    @property
    def deeptime_model(self):
        """The deeptime ``CovarianceKoopmanModel`` (rebuilt from the stored covariances when loaded)."""
        if self._model is None:
            self._model = _deeptime_from_covariances(
                self.cov_00, self.cov_0t, self.mean_0, self.mean_t, self.lag,
                dim=self.dim_requested, var_cutoff=self.var_cutoff, scaling=self.scaling, epsilon=self.epsilon,
            )
        return self._model

    # --- projection ----------------------------------------------------------------------------
    def _n(self, n_components: int | None) -> int:
        if n_components is None:
            return self.dim
        n = int(n_components)
        if not 1 <= n <= self.dim:
            raise InputError(f"asked for {n} TICA components but the reference TICA has {self.dim}",
                             hint="lower n_components or refit the TICA with a larger dim")
        return n

    def _check_beads(self, n_beads: int, where: str | None) -> None:
        if int(n_beads) != self.n_beads:
            raise DatasetError(
                f"trajectory has {n_beads} beads but the reference TICA was fitted on {self.n_beads}",
                where=where, hint="score trajectories of the same CG system as the reference dataset",
            )

    def features(self, coords: np.ndarray, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> np.ndarray:
        """TICA input features of ``coords`` (float32 ``[F, n_features]``)."""
        return featurize(coords, self.feature_kind, chunk_frames=chunk_frames)

    def transform(self, coords: np.ndarray, n_components: int | None = None, *,
                  chunk_frames: int = DEFAULT_CHUNK_FRAMES, where: str | None = None) -> np.ndarray:
        """Project ``coords`` ``[F, B, 3]`` (Å) onto the first ``n_components`` TICs -> float64 ``[F, k]``.

        Works chunk by chunk, so memory stays bounded for memory-mapped inputs of any length.
        """
        coords = np.asarray(coords) if not isinstance(coords, np.ndarray) else coords
        if coords.ndim != 3 or coords.shape[-1] != 3:
            raise InputError(f"coordinates must have shape [frames, beads, 3], got {tuple(coords.shape)}",
                             where=where)
        self._check_beads(coords.shape[1], where)
        k = self._n(n_components)
        u = np.ascontiguousarray(self.coefficients[:, :k], dtype=np.float64)
        mean = self.mean.astype(np.float64)
        out = np.empty((coords.shape[0], k), dtype=np.float64)
        # small inputs never reach BLAS threading; entering the limit costs milliseconds
        with single_thread_blas() if coords.shape[0] > 50_000 else contextlib.nullcontext():
            for s in range(0, coords.shape[0], chunk_frames):
                f = featurize(coords[s : s + chunk_frames], self.feature_kind, chunk_frames=chunk_frames)
                out[s : s + len(f)] = (f.astype(np.float64) - mean) @ u
        return out

    def transform_torch(self, pos: Tensor, n_components: int | None = None) -> Tensor:
        """Differentiable projection of ``pos`` ``[..., B, 3]`` (Å, torch) -> ``[..., k]``.

        Same numbers as :meth:`transform` (up to the dtype of ``pos``); keeps its device and dtype.
        """
        if pos.shape[-1] != 3 or pos.dim() < 2:
            raise InputError(f"positions must have shape [..., beads, 3], got {tuple(pos.shape)}")
        self._check_beads(pos.shape[-2], None)
        k = self._n(n_components)
        key = (str(pos.device), pos.dtype, k)
        if key not in self._torch_cache:
            import torch

            self._torch_cache[key] = (
                torch.as_tensor(self.mean, dtype=pos.dtype, device=pos.device),
                torch.as_tensor(np.ascontiguousarray(self.coefficients[:, :k]), dtype=pos.dtype, device=pos.device),
            )
        mean, u = self._torch_cache[key]
        return (featurize_torch(pos, self.feature_kind) - mean) @ u

    # --- compatibility -----------------------------------------------------------------------
    def check_compatible(self, dataset_or_n_beads: CGDataset | int, *, where: str | None = None) -> None:
        """Raise :class:`DatasetError` unless the target matches this TICA.

        An ``int`` is a bead count; an object with ``n_beads`` is checked for it; a ``CGDataset`` is
        also checked for the content hash (the TICA must come from *this* reference dataset).
        """
        if isinstance(dataset_or_n_beads, (int, np.integer)):
            self._check_beads(int(dataset_or_n_beads), where)
            return
        n_beads = getattr(dataset_or_n_beads, "n_beads", None)
        if n_beads is None:
            raise InputError(f"cannot check TICA compatibility against {type(dataset_or_n_beads).__name__}")
        if int(n_beads) != self.n_beads:
            raise DatasetError(
                f"the reference TICA was fitted on {self.n_beads} beads but this has {n_beads}",
                where=where, hint="use the TICA fitted on this reference ('raycg eval tica DATASET')",
            )
        meta = getattr(dataset_or_n_beads, "meta", None)
        if meta is not None and self.dataset_hash:
            h = dataset_or_n_beads.content_hash
            if h != self.dataset_hash:
                name = getattr(meta, "name", "dataset")
                raise DatasetError(
                    f"the TICA file was fitted on another dataset (hash {self.dataset_hash[:19]}..., "
                    f"this dataset {name!r} has {h[:19]}...)",
                    where=where, hint="refit it with 'raycg eval tica DATASET' or pass the matching TICA file",
                )

    # --- summary, save, load -----------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "lag_frames": int(self.lag),
            "lag_ps": self.lag_ps,
            "dt_frame_ps": float(self.dt_frame_ps),
            "dim": self.dim,
            "dim_requested": self.dim_requested,
            "var_cutoff": self.var_cutoff,
            "scaling": self.scaling,
            "epsilon": float(self.epsilon),
            "feature_kind": self.feature_kind,
            "n_features": self.n_features,
            "n_beads": int(self.n_beads),
            "dataset_hash": self.dataset_hash,
            "dataset_name": self.dataset_name,
            "temperature_K": self.temperature_K,
            "n_trajectories_used": int(self.n_trajectories_used),
            "n_trajectories_skipped": int(self.n_trajectories_skipped),
            "n_pairs": int(self.n_pairs),
            "weighted": bool(self.weighted),
            "eigenvalues": [float(x) for x in self.eigenvalues],
            "timescales_ps": [float(x) if np.isfinite(x) else None for x in self.timescales_ps],
            "extra": self.extra,
        }

    def summary(self, n: int = 5) -> str:
        lines = [
            f"reference TICA: {self.feature_kind} ({self.n_features} features, {self.n_beads} beads), "
            f"lag {self.lag} frames = {self.lag_ps:g} ps, {self.dim} components, "
            f"{self.n_trajectories_used} trajectories ({self.n_trajectories_skipped} shorter than the lag skipped), "
            f"{self.n_pairs} lagged pairs{', weighted' if self.weighted else ''}",
            "  TIC  eigenvalue  implied timescale (ps)",
        ]
        for k, (lam, ts) in enumerate(zip(self.eigenvalues[:n], self.timescales_ps[:n])):
            lines.append(f"  {k + 1:3d}  {lam:10.5f}  {ts:12.4g}")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (``.npz``, atomic) and a readable ``.json`` sidecar next to it."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        header = self.header()
        buf = io.BytesIO()
        np.savez(
            buf,
            header_json=np.array(json.dumps(header, sort_keys=True)),
            mean=np.asarray(self.mean, np.float64),
            coefficients=np.asarray(self.coefficients, np.float64),
            eigenvalues=np.asarray(self.eigenvalues, np.float64),
            cov_00=np.asarray(self.cov_00, np.float64),
            cov_0t=np.asarray(self.cov_0t, np.float64),
            mean_0=np.asarray(self.mean_0, np.float64),
            mean_t=np.asarray(self.mean_t, np.float64),
        )
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
        atomic_write_json(path.with_suffix(".json"), header)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReferenceTICA:
        """Read a file written by :meth:`save` (``.npz``; a ``.json`` sidecar or a directory holding
        ``tica.npz`` are accepted too)."""
        path = Path(path)
        if path.is_dir():
            path = path / "tica.npz"
        elif path.suffix == ".json":
            path = path.with_suffix(".npz")
        if not path.is_file():
            raise InputError(f"TICA file not found: {path}",
                             hint="make one with 'raycg eval tica DATASET --out tica.npz'")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k]) for k in z.files}
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path}: not a readable TICA file ({str(exc).splitlines()[0]})",
                             hint="re-create it with 'raycg eval tica DATASET'") from None
        try:
            header = json.loads(str(arrays["header_json"]))
        except (KeyError, json.JSONDecodeError):
            raise InputError(f"{path}: not a raycg TICA file (no header)",
                             hint="re-create it with 'raycg eval tica DATASET'") from None
        if header.get("format") != FORMAT_NAME:
            raise InputError(f"{path}: not a raycg TICA file (format {header.get('format')!r})")
        if int(header.get("format_version", -1)) > FORMAT_VERSION:
            raise InputError(f"{path}: TICA file format version {header.get('format_version')} is newer than "
                             f"this raycg supports ({FORMAT_VERSION})", hint="upgrade raycg")
        missing = [k for k in ("mean", "coefficients", "eigenvalues", "cov_00", "cov_0t", "mean_0", "mean_t")
                   if k not in arrays]
        if missing:
            raise InputError(f"{path}: TICA file lacks arrays {missing}", hint="re-create it with 'raycg eval tica'")
        kind = header["feature_kind"]
        check_feature_kind(kind)
        n_beads = int(header["n_beads"])
        if arrays["coefficients"].shape[0] != feature_dim(kind, n_beads):
            raise InputError(f"{path}: coefficient matrix has {arrays['coefficients'].shape[0]} rows, expected "
                             f"{feature_dim(kind, n_beads)} for {kind} of {n_beads} beads", hint="the file is corrupt")
        return cls(
            lag=int(header["lag_frames"]), feature_kind=kind, n_beads=n_beads,
            dataset_hash=header.get("dataset_hash", ""), mean=arrays["mean"], coefficients=arrays["coefficients"],
            eigenvalues=arrays["eigenvalues"], dt_frame_ps=float(header["dt_frame_ps"]),
            cov_00=arrays["cov_00"], cov_0t=arrays["cov_0t"], mean_0=arrays["mean_0"], mean_t=arrays["mean_t"],
            scaling=header.get("scaling"), epsilon=float(header.get("epsilon", 1e-6)),
            dim_requested=header.get("dim_requested"), var_cutoff=header.get("var_cutoff"),
            temperature_K=header.get("temperature_K"), dataset_name=header.get("dataset_name", ""),
            n_trajectories_used=int(header.get("n_trajectories_used", 0)),
            n_trajectories_skipped=int(header.get("n_trajectories_skipped", 0)),
            n_pairs=int(header.get("n_pairs", 0)), weighted=bool(header.get("weighted", False)),
            extra=dict(header.get("extra") or {}),
        )


# ----------------------------------------------------------------------------------------------
# fitting


def _deeptime_from_covariances(cov_00, cov_0t, mean_0, mean_t, lag, *, dim, var_cutoff, scaling, epsilon):
    from deeptime.covariance import CovarianceModel
    from deeptime.decomposition import TICA

    cm = CovarianceModel(cov_00=np.asarray(cov_00), cov_0t=np.asarray(cov_0t), cov_tt=np.asarray(cov_00),
                         mean_0=np.asarray(mean_0), mean_t=np.asarray(mean_t), bessels_correction=False,
                         symmetrized=True, lagtime=int(lag), data_mean_removed=True)
    est = TICA(lagtime=int(lag), epsilon=epsilon, dim=dim, var_cutoff=var_cutoff, scaling=scaling)
    return est.fit_from_covariances(cm).fetch_model()


def _resolve_weights(dataset, weights) -> np.ndarray | None:
    if isinstance(weights, str):
        if weights != "dataset":
            raise InputError(f"weights must be 'dataset', None or an array of per-frame weights, got {weights!r}")
        weights = dataset.weights
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (dataset.n_frames,):
        raise InputError(f"TICA weights must have one value per frame ({dataset.n_frames}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise DatasetError("frame weights must be finite, non-negative and not all zero",
                           where=str(getattr(dataset, "path", None) or "weights"))
    return w


def fit_reference_tica(dataset: CGDataset, lag: int = 20, dim: int | None = None, features: str = "pair_distances",
                       weights: np.ndarray | str | None = "dataset", *, var_cutoff: float | None = None,
                       scaling: str | None = "kinetic_map", epsilon: float = 1e-6,
                       chunk_rows: int = FIT_CHUNK_ROWS, progress: bool = False) -> ReferenceTICA:
    """Fit the reference TICA on ``dataset`` (a :class:`raycg.data.format.CGDataset`).

    - ``lag``: lag time in frames (``lag * dataset.meta.dt_frame_ps`` ps);
    - ``dim``: number of components kept (``None``: all, i.e. the rank; or use ``var_cutoff``);
    - ``features``: ``"pair_distances"`` or ``"pair_distances+pseudo_dihedrals"``;
    - ``weights``: ``"dataset"`` (the dataset's per-frame weights if it has them, else uniform),
      ``None`` (uniform) or an array ``[F]``; the weight of frame ``t`` weighs the pair ``(t, t+lag)``.

    Lagged pairs never cross trajectory boundaries; trajectories with ``length <= lag`` are skipped
    and counted (``n_trajectories_skipped``). Memory is bounded by ``chunk_rows`` feature rows.
    """
    with single_thread_blas():
        return _fit(dataset, lag, dim, features, weights, var_cutoff, scaling, epsilon, chunk_rows, progress)


def _fit(dataset, lag, dim, features, weights, var_cutoff, scaling, epsilon, chunk_rows, progress) -> ReferenceTICA:
    from deeptime.decomposition import TICA
    from deeptime.numeric import ZeroRankError

    lag, where = _check_fit_args(dataset, lag, dim, features, var_cutoff)
    pairs = _LaggedPairs(TICA.covariance_estimator(lagtime=lag), lag, _resolve_weights(dataset, weights),
                         int(chunk_rows))
    _stream_pairs(dataset, features, pairs, where, progress)
    try:
        cm = pairs.cov.fetch_model()
        model = TICA(lagtime=lag, epsilon=epsilon, dim=dim, var_cutoff=var_cutoff,
                     scaling=scaling).fit_from_covariances(cm).fetch_model()
    except ZeroRankError:
        raise DatasetError("all TICA features are constant over the dataset", where=where,
                           hint="check the coordinates (a frozen structure has no dynamics to analyse)") from None
    k = int(model.output_dimension)
    tica = ReferenceTICA(
        lag=lag, feature_kind=features, n_beads=dataset.n_beads, dataset_hash=dataset.content_hash,
        mean=np.asarray(model.mean_0, np.float64).copy(),
        coefficients=np.asarray(model.instantaneous_coefficients, np.float64)[:, :k].copy(),
        eigenvalues=np.real(np.asarray(model.singular_values, np.float64)).copy(),
        dt_frame_ps=float(dataset.meta.dt_frame_ps), cov_00=np.asarray(cm.cov_00, np.float64).copy(),
        cov_0t=np.asarray(cm.cov_0t, np.float64).copy(), mean_0=np.asarray(cm.mean_0, np.float64).copy(),
        mean_t=np.asarray(cm.mean_t, np.float64).copy(), scaling=scaling, epsilon=float(epsilon),
        dim_requested=None if dim is None else int(dim), var_cutoff=var_cutoff,
        temperature_K=float(dataset.meta.temperature_K), dataset_name=dataset.meta.name,
        n_trajectories_used=pairs.n_used, n_trajectories_skipped=pairs.n_skipped, n_pairs=pairs.n_pairs,
        weighted=pairs.weights is not None,
    )
    tica._model = model
    return tica


def _check_fit_args(dataset, lag, dim, features, var_cutoff) -> tuple[int, str]:
    """The lag as an int and the dataset's name for messages; InputError/DatasetError on bad arguments."""
    check_feature_kind(features)
    if not isinstance(lag, (int, np.integer)) or isinstance(lag, bool) or lag < 1:
        raise InputError(f"TICA lag must be a positive whole number of frames, got {lag!r}")
    if dim is not None and (not isinstance(dim, (int, np.integer)) or dim < 1):
        raise InputError(f"TICA dim must be a positive integer or None, got {dim!r}")
    if var_cutoff is not None and not 0 < var_cutoff <= 1:
        raise InputError(f"TICA var_cutoff must be in (0, 1], got {var_cutoff}")
    where = str(dataset.path) if getattr(dataset, "path", None) else getattr(dataset.meta, "name", "dataset")
    if dataset.n_beads < 2:
        raise DatasetError(f"dataset has {dataset.n_beads} bead(s); TICA on pair distances needs at least 2",
                           where=where)
    lengths = np.diff(np.asarray(dataset.traj_offsets, dtype=np.int64))
    if not np.any(lengths > lag):
        raise DatasetError(
            f"no trajectory is longer than the TICA lag ({lag} frames; {len(lengths)} trajectories skipped)",
            where=where, hint="use a smaller --lag",
        )
    return int(lag), where


@dataclass
class _LaggedPairs:
    """Time-lagged feature pairs (and their weights) buffered and fed to a deeptime covariance
    estimator in chunks of about ``chunk_rows`` rows; counts what was used."""

    cov: Any
    lag: int
    weights: np.ndarray | None
    chunk_rows: int
    n_used: int = 0
    n_skipped: int = 0
    n_pairs: int = 0
    _x: list[np.ndarray] = field(default_factory=list)
    _y: list[np.ndarray] = field(default_factory=list)
    _w: list[np.ndarray] = field(default_factory=list)
    _rows: int = 0

    def add(self, f: np.ndarray, lo: int, n: int, w_start: int) -> None:
        """Pairs (f[lo + i], f[lo + i + lag]) for i < n, weighted by the frames from ``w_start``."""
        self._x.append(f[lo : lo + n])
        self._y.append(f[lo + self.lag : lo + self.lag + n])
        if self.weights is not None:
            self._w.append(self.weights[w_start : w_start + n])
        self._rows += n
        if self._rows >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self._x:
            return
        x = np.concatenate(self._x).astype(np.float64)
        y = np.concatenate(self._y).astype(np.float64)
        w = np.concatenate(self._w) if self.weights is not None else None
        if w is None or np.any(w > 0):
            self.cov.partial_fit((x, y), weights=w)
        self._x.clear()
        self._y.clear()
        self._w.clear()
        self._rows = 0


def _checked_features(dataset, features: str, a: int, b: int, where: str) -> np.ndarray:
    """Features of frames [a, b); DatasetError naming the trajectory and frame of a non-finite value."""
    f = featurize(dataset.coords[a:b], features)
    if not np.all(np.isfinite(f)):
        bad = a + int(np.argwhere(~np.isfinite(f))[0, 0])
        t_bad = int(np.searchsorted(np.asarray(dataset.traj_offsets), bad, side="right") - 1)
        raise DatasetError(f"non-finite coordinates in trajectory {t_bad}, frame {bad}",
                           where=where, hint="clean or re-import the dataset")
    return f


def _stream_pairs(dataset, features: str, pairs: _LaggedPairs, where: str, progress: bool) -> None:
    """Every lagged pair inside each trajectory into ``pairs``, featurising at most ~chunk_rows frames at once:
    a long trajectory chunk by chunk (each chunk overlapping the next by the lag), consecutive short ones
    as one block."""
    offsets = np.asarray(dataset.traj_offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    lag, step, n_traj = pairs.lag, max(pairs.chunk_rows, 1), dataset.n_trajectories
    bar = None
    if progress:
        from raycg.utils.progress import Progress

        bar = Progress(total=n_traj, desc="TICA fit", unit="traj")
    t = 0
    while t < n_traj:
        a = int(offsets[t])
        if lengths[t] > step:
            length = int(lengths[t])
            pairs.n_used += 1
            pairs.n_pairs += length - lag
            for s in range(0, length - lag, step):
                e = min(s + step, length - lag)
                pairs.add(_checked_features(dataset, features, a + s, a + e + lag, where), 0, e - s, a + s)
            t += 1
        else:
            u = t
            while u < n_traj and lengths[u] <= step and int(offsets[u + 1]) - a <= step:
                u += 1
            f = _checked_features(dataset, features, a, int(offsets[u]), where)
            for v in range(t, u):
                length = int(lengths[v])
                if length <= lag:
                    pairs.n_skipped += 1
                    continue
                pairs.n_used += 1
                pairs.n_pairs += length - lag
                pairs.add(f, int(offsets[v]) - a, length - lag, int(offsets[v]))
            t = u
        if bar is not None:
            bar.update(t - bar.n if hasattr(bar, "n") else 1)
    pairs.flush()
    if bar is not None and hasattr(bar, "close"):
        bar.close()
