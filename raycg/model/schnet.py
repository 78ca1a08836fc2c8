"""CGSchNet: SchNet for coarse-grained beads, ``(pos[R, B, 3] Å, bead_types[B]) -> energy[R]`` kcal/mol.

Bead-type embedding → ``num_interactions`` continuous-filter interaction blocks (filter = MLP of a
radial basis of the pair distance × a cosine cutoff) with residual updates → per-bead output MLP → sum
per structure. Two exact execution paths give the same numbers (tested): **dense** (up to
``dense_max_beads``; filters once per unordered pair, :mod:`raycg.model.dense`) and **sparse** (exact
neighbour list, :mod:`raycg.model.neighbours`, torch-geometric message passing). Design:
docs/architecture.md ("raycg.model.schnet").
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from raycg.model.config import CGSchNetConfig  # defined without torch; re-exported here
from raycg.model.dense import DensePairs, Layout, choose_layout
from raycg.model.neighbours import neighbour_pairs

# ----------------------------------------------------------------------------------------------
# building blocks


class ShiftedSoftplus(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shift = math.log(2.0)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.softplus(x) - self.shift


def activation_and_derivative(name: str, x: Tensor) -> tuple[Tensor, Tensor]:
    """act(x) and act'(x) (for the fused analytic force pass)."""
    if name == "tanh":
        t = torch.tanh(x)
        return t, 1.0 - t * t
    if name == "ssp":
        return nn.functional.softplus(x) - math.log(2.0), torch.sigmoid(x)
    if name == "silu":
        sg = torch.sigmoid(x)
        return x * sg, sg * (1.0 + x * (1.0 - sg))
    raise ValueError(f"unknown activation {name!r}")


def make_activation(name: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()
    if name == "ssp":
        return ShiftedSoftplus()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown activation {name!r}")


class CosineCutoff(nn.Module):
    """Smooth switch: 1 → 0 over [0, upper) (lower = 0), or a cosine bump on (lower, upper)."""

    def __init__(self, lower: float, upper: float) -> None:
        super().__init__()
        self.lower = float(lower)
        self.upper = float(upper)

    def forward(self, d: Tensor) -> Tensor:
        if self.lower > 0:
            x = (d - self.lower) / (self.upper - self.lower)         # 0 .. 1 inside the window
            c = 0.5 * (1.0 - torch.cos(2.0 * math.pi * x))
            inside = (d > self.lower) & (d < self.upper)
        else:
            c = 0.5 * (torch.cos(d * (math.pi / self.upper)) + 1.0)
            inside = d < self.upper
        return c * inside.to(d.dtype)

    def with_derivative(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """C(d) and dC/dd."""
        if self.lower > 0:
            width = self.upper - self.lower
            x = 2.0 * math.pi * (d - self.lower) / width
            inside = ((d > self.lower) & (d < self.upper)).to(d.dtype)
            return 0.5 * (1.0 - torch.cos(x)) * inside, (math.pi / width) * torch.sin(x) * inside
        x = d * (math.pi / self.upper)
        inside = (d < self.upper).to(d.dtype)
        return 0.5 * (torch.cos(x) + 1.0) * inside, (-0.5 * math.pi / self.upper) * torch.sin(x) * inside


class ExpNormalBasis(nn.Module):
    """Exponential-normal radial basis: exp(-β_k (exp(-α (d - lower)) - μ_k)²), α = 5/(upper-lower)."""

    def __init__(self, n: int, lower: float, upper: float, trainable: bool = False) -> None:
        super().__init__()
        self.lower = float(lower)
        self.alpha = 5.0 / (upper - lower)
        first = math.exp(-(upper - lower))
        means = torch.linspace(first, 1.0, n)
        betas = torch.full((n,), (2.0 / n * (1.0 - first)) ** -2)
        if trainable:
            self.means, self.betas = nn.Parameter(means), nn.Parameter(betas)
        else:
            self.register_buffer("means", means)
            self.register_buffer("betas", betas)

    def forward(self, d: Tensor) -> Tensor:
        u = torch.exp(-self.alpha * (d.unsqueeze(-1) - self.lower))
        return torch.exp(-self.betas * (u - self.means) ** 2)

    def with_derivative(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """φ(d) [..., K] and dφ/dd."""
        u = torch.exp(-self.alpha * (d.unsqueeze(-1) - self.lower))
        du = u - self.means
        phi = torch.exp(-self.betas * du * du)
        return phi, (2.0 * self.alpha) * self.betas * u * du * phi


class GaussianBasis(nn.Module):
    """Gaussians centred on an even grid over [lower, upper], width = grid spacing."""

    def __init__(self, n: int, lower: float, upper: float, trainable: bool = False) -> None:
        super().__init__()
        centres = torch.linspace(lower, upper, n)
        width = torch.full((n,), (upper - lower) / (n - 1))
        if trainable:
            self.centres, self.width = nn.Parameter(centres), nn.Parameter(width)
        else:
            self.register_buffer("centres", centres)
            self.register_buffer("width", width)

    def forward(self, d: Tensor) -> Tensor:
        z = (d.unsqueeze(-1) - self.centres) / self.width
        return torch.exp(-0.5 * z * z)

    def with_derivative(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """φ(d) [..., K] and dφ/dd."""
        z = (d.unsqueeze(-1) - self.centres) / self.width
        phi = torch.exp(-0.5 * z * z)
        return phi, -phi * z / self.width


class CFConvMP(MessagePassing):
    """Continuous-filter convolution on an edge list: out_i = Σ_j W_ij ⊙ x_j (sum aggregation)."""

    def __init__(self) -> None:
        super().__init__(aggr="add", flow="source_to_target")

    def forward(self, x: Tensor, edge_index: Tensor, weight: Tensor) -> Tensor:
        return self.propagate(edge_index, x=x, weight=weight, size=(x.shape[0], x.shape[0]))

    def message(self, x_j: Tensor, weight: Tensor) -> Tensor:
        return x_j * weight


class Interaction(nn.Module):
    """One interaction block (the filter's first layer lives in CGSchNet, fused across blocks)."""

    def __init__(self, hidden: int, filters: int, activation: str) -> None:
        super().__init__()
        self.filter_out = nn.Linear(filters, filters)       # second layer of the filter MLP
        self.lin_in = nn.Linear(hidden, filters, bias=False)
        self.lin_conv = nn.Linear(filters, hidden)
        self.act = make_activation(activation)
        self.lin_out = nn.Linear(hidden, hidden)

    def update(self, m: Tensor) -> Tensor:
        return self.lin_out(self.act(self.lin_conv(m)))


# ----------------------------------------------------------------------------------------------
# pair filters: exact (the filter networks) or tabulated (frozen weights, simulation)

#: Default grid spacing (Å) of :class:`FilterTable`: interpolation error ~2e-7 of the largest
#: filter value for the default CGSchNet, forces within ~2e-5 kcal/mol/Å (float32 round-off level).
DEFAULT_TABLE_SPACING_A = 0.005


class PairFilters:
    """Filters W_k(d) of every interaction at the pair distances d, and dE/dd from ∂E/∂W_k."""

    def weights(self) -> list[Tensor]:                                       # [..., F] per interaction
        raise NotImplementedError

    def grad_distance(self, grad_weights: list[Tensor]) -> Tensor:         # Σ_k ∂E/∂W_k · dW_k/dd
        raise NotImplementedError


class ExactFilters(PairFilters):
    """The filter networks: W_k = MLP_k(φ(d)) · C(d), the first layers fused across interactions."""

    def __init__(self, net: CGSchNet, d: Tensor, derivatives: bool = True) -> None:
        """``derivatives=False``: values only (energy passes; :meth:`grad_distance` unavailable)."""
        self.net = net
        self.q: list[Tensor] = []
        if not derivatives:
            self.z = net.filter_act(net.filter_in(net.basis(d)))             # [..., nI*F]
            self.env = net.cutoff(d).unsqueeze(-1)
            return
        act = net.config.activation
        self.phi, self.dphi = net.basis.with_derivative(d)                  # [..., K]
        env, self.denv = net.cutoff.with_derivative(d)                       # [...]
        self.env = env.unsqueeze(-1)
        self.z, self.dz = activation_and_derivative(act, net.filter_in(self.phi))   # [..., nI*F]

    def weights(self) -> list[Tensor]:
        f = self.net.config.num_filters
        self.q = [blk.filter_out(zk) for zk, blk in zip(self.z.split(f, dim=-1), self.net.interactions)]
        return [q * self.env for q in self.q]

    def grad_distance(self, grad_weights: list[Tensor]) -> Tensor:
        blocks = self.net.interactions
        gz = torch.cat([(gw * self.env) @ blk.filter_out.weight for gw, blk in zip(grad_weights, blocks)], dim=-1)
        gphi = (gz * self.dz) @ self.net.filter_in.weight                    # [..., K]
        ge = sum((gw * q).sum(-1) for gw, q in zip(grad_weights, self.q))    # ∂E/∂C
        return ge * self.denv + (gphi * self.dphi).sum(-1)


class FilterTable(nn.Module):
    """Every interaction's filter W_k(d) = MLP_k(φ(d))·C(d) tabulated on a uniform distance grid.

    With frozen weights (simulation) the filters are functions of one scalar, the pair distance,
    so the per-pair filter networks — most of CGSchNet's arithmetic — can be replaced by a table
    lookup, as MD codes do for tabulated pair potentials (and DeePMD-kit's model compression for
    its embedding net). Piecewise cubic Hermite interpolation from exact values and derivatives at
    the nodes (computed in float64): W and dW/dd are continuous, forces are the exact derivative
    of the interpolated energy (energy is conserved), and the interpolation error is measured at
    build time at every interval midpoint (``max_error``, ``max_relative_error``).
    Beyond the cutoffs the filters are zero, as in the network.
    """

    def __init__(self, net: CGSchNet, spacing_A: float = DEFAULT_TABLE_SPACING_A) -> None:
        super().__init__()
        if not spacing_A > 0:
            raise ValueError(f"spacing_A must be > 0, got {spacing_A}")
        c = net.config
        self.lower, upper = float(c.cutoff_lower), float(c.cutoff_upper)
        n = max(2, math.ceil((upper - self.lower) / spacing_A) + 1)
        self.n_nodes = n
        self.spacing = (upper - self.lower) / (n - 1)
        ref = copy.deepcopy(net).to(device="cpu", dtype=torch.float64).eval()
        grid = torch.linspace(self.lower, upper, n, dtype=torch.float64)
        with torch.no_grad():
            w, dw = _filters_and_derivative(ref, grid)                       # [n, nI*F]
            hs = self.spacing
            a, b = w[:-1], hs * dw[:-1]                                      # W(u) = a + b u + c u² + e u³
            cc = 3.0 * (w[1:] - w[:-1]) - 2.0 * hs * dw[:-1] - hs * dw[1:]
            e = 2.0 * (w[:-1] - w[1:]) + hs * dw[:-1] + hs * dw[1:]
            coef = torch.stack([a, b, cc, e], dim=1)                         # [n-1, 4, nI*F]
            mid = grid[:-1] + 0.5 * hs
            exact, _ = _filters_and_derivative(ref, mid)
            approx, _ = _evaluate_table(coef, mid, self.lower, hs, n)
            err = (approx - exact).abs().max().item()
            scale = w.abs().max().item()
        self.max_error = err
        self.max_relative_error = err / scale if scale > 0 else 0.0
        param = next(net.parameters())
        self.register_buffer("coef", coef.to(device=param.device, dtype=param.dtype).reshape(n - 1, -1))
        self.num_filters = c.num_filters

    def forward(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """W [..., nI*F] and dW/dd at distances d (Å)."""
        coef = self.coef.view(self.n_nodes - 1, 4, -1)
        return _evaluate_table(coef, d, self.lower, self.spacing, self.n_nodes)


def _evaluate_table(coef: Tensor, d: Tensor, lower: float, spacing: float, n: int) -> tuple[Tensor, Tensor]:
    t = ((d - lower) * (1.0 / spacing)).clamp(0.0, float(n - 1))
    k = t.floor().clamp(max=n - 2)
    u = (t - k).unsqueeze(-1)
    c = coef.index_select(0, k.long().reshape(-1)).view(*d.shape, 4, coef.shape[-1])
    c0, c1, c2, c3 = c.unbind(-2)
    w = ((c3 * u + c2) * u + c1) * u + c0
    dw = ((3.0 * c3 * u + 2.0 * c2) * u + c1) * (1.0 / spacing)
    return w, dw


def _filters_and_derivative(net: CGSchNet, d: Tensor) -> tuple[Tensor, Tensor]:
    """Exact W_k(d) for all interactions [n, nI*F] and dW/dd (forward mode: d is a batch of scalars)."""

    def all_filters(x: Tensor) -> Tensor:
        return torch.cat(ExactFilters(net, x, derivatives=False).weights(), dim=-1)

    return torch.func.jvp(all_filters, (d,), (torch.ones_like(d),))


class TabulatedFilters(PairFilters):
    """Filters read from a :class:`FilterTable`."""

    def __init__(self, table: FilterTable, d: Tensor) -> None:
        w, dw = table(d)
        f = table.num_filters
        self.w, self.dw = w.split(f, dim=-1), dw.split(f, dim=-1)

    def weights(self) -> list[Tensor]:
        return list(self.w)

    def grad_distance(self, grad_weights: list[Tensor]) -> Tensor:
        return sum((gw * dw).sum(-1) for gw, dw in zip(grad_weights, self.dw))


# ----------------------------------------------------------------------------------------------
# the network


class CGSchNet(nn.Module):
    """CGSchNet energy network: ``forward(pos[R,B,3], types[B] or [R,B]) -> energy[R]`` (kcal/mol)."""

    def __init__(self, config: CGSchNetConfig | None = None, **overrides: object) -> None:
        super().__init__()
        if config is None:
            config = CGSchNetConfig(**overrides)
        elif overrides:
            config = config.model_copy(update=overrides)
            config = CGSchNetConfig.model_validate(config.model_dump())
        self.config = config
        c = config
        h, f = c.hidden_channels, c.num_filters
        self.embedding = nn.Embedding(c.num_types, h)
        basis = ExpNormalBasis if c.rbf == "expnormal" else GaussianBasis
        self.basis = basis(c.num_rbf, c.cutoff_lower, c.cutoff_upper, c.trainable_rbf)
        self.cutoff = CosineCutoff(c.cutoff_lower, c.cutoff_upper)
        self.filter_in = nn.Linear(c.num_rbf, f * c.num_interactions)   # fused first filter layers
        self.filter_act = make_activation(c.activation)
        self.interactions = nn.ModuleList(Interaction(h, f, c.activation) for _ in range(c.num_interactions))
        self.conv = CFConvMP()
        oh = c.output_hidden_channels or max(1, h // 2)
        self.output = nn.Sequential(nn.Linear(h, oh), make_activation(c.activation), nn.Linear(oh, 1))
        self.neighbour_method = c.neighbour_method
        self._pair_cache: dict[tuple, DensePairs] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=1.0)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # -- helpers -----------------------------------------------------------------------------
    def _embed(self, types: Tensor, r: int, b: int) -> Tensor:
        if types.dim() == 1:
            if types.shape[0] != b:
                raise ValueError(f"types has {types.shape[0]} entries for {b} beads")
            return self.embedding(types).unsqueeze(0).expand(r, b, -1)
        if types.shape != (r, b):
            raise ValueError(f"types must be [B] or [R, B] = [{r}, {b}], got {tuple(types.shape)}")
        return self.embedding(types)

    def use_dense(self, n_beads: int) -> bool:
        m = self.neighbour_method
        return m == "dense" or (m == "auto" and n_beads <= self.config.dense_max_beads)

    # -- forward -----------------------------------------------------------------------------
    def forward(self, pos: Tensor, types: Tensor) -> Tensor:
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        r, b, _ = pos.shape
        h = self._embed(types.to(pos.device), r, b).to(pos.dtype)
        if self.use_dense(b):
            h = self._dense(pos, h)
        else:
            h = self._sparse(pos, h)
        return self.output(h).squeeze(-1).sum(-1)

    def dense_pairs(self, n_beads: int, device: torch.device, layout: Layout = "auto", *,
                    weight_grads: bool = False) -> DensePairs:
        """The pair ↔ bead operations of the dense path (cached per size, device and layout)."""
        chosen = choose_layout(layout, weight_grads, n_beads)
        if torch.compiler.is_compiling():                                   # traced once, constant-folded
            return DensePairs(n_beads, device, chosen)
        key = (n_beads, str(device), chosen)
        if key not in self._pair_cache:
            self._pair_cache[key] = DensePairs(n_beads, device, chosen)
        return self._pair_cache[key]

    def _dense(self, pos: Tensor, h: Tensor, layout: Layout = "auto") -> Tensor:
        pairs = self.dense_pairs(pos.shape[1], pos.device, layout, weight_grads=torch.is_grad_enabled())
        d = pairs.diffs(pos).pow(2).sum(-1).sqrt()                           # [R, P]
        for w, block in zip(ExactFilters(self, d, derivatives=False).weights(), self.interactions):
            h = h + block.update(pairs.contract(w, block.lin_in(h)))         # Σ_j W_ij x_j
        return h

    # -- fused energy and forces ---------------------------------------------------------------
    def energy_and_forces(self, pos: Tensor, types: Tensor, *, create_graph: bool = False,
                          table: FilterTable | None = None) -> tuple[Tensor, Tensor]:
        """Energy [R] and forces −∇E [R,B,3] in one pass.

        The gradient is written out analytically (a forward pass plus a hand-written
        reverse pass, no autograd over positions), so the forces are an ordinary differentiable
        function of the weights: training needs only first-order autograd, and the whole pass can
        be ``torch.compile``d. Sparse path: the same reverse pass on the neighbour list, with the
        messages passed by the torch-geometric ``MessagePassing`` convolution.

        ``table``: a :class:`FilterTable` of this network's filters (:meth:`filter_table`) replaces
        the per-pair filter networks (simulation with frozen weights; not with ``create_graph``).
        """
        if table is not None and create_graph:
            raise ValueError("a FilterTable holds frozen filters: it cannot be used with create_graph=True")
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        r, b, _ = pos.shape
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            h = self._embed(types.to(pos.device), r, b).to(pos.dtype)
            if self.use_dense(b):
                return self._dense_energy_forces(pos, h, table=table)
            return self._sparse_energy_forces(pos, h, table=table)

    def pair_filters(self, d: Tensor, table: FilterTable | None = None) -> PairFilters:
        """Every interaction's filter at pair distances ``d`` (Å), and their distance derivative."""
        return TabulatedFilters(table, d) if table is not None else ExactFilters(self, d)

    def filter_table(self, spacing_A: float = DEFAULT_TABLE_SPACING_A) -> FilterTable:
        """Tabulate this network's current filters (see :class:`FilterTable`)."""
        return FilterTable(self, spacing_A)

    def _sparse_energy_forces(self, pos: Tensor, h: Tensor, table: FilterTable | None = None) -> tuple[Tensor, Tensor]:
        """The fused pass on a neighbour list (messages by the MessagePassing convolution)."""
        c = self.config
        r, b, _ = pos.shape
        n = r * b
        act = c.activation
        flat = pos.reshape(n, 3)
        method = self.neighbour_method if self.neighbour_method != "dense" else "auto"
        i, j = neighbour_pairs(pos, c.cutoff_upper, method=method)
        edge_index = torch.stack([torch.cat([j, i]), torch.cat([i, j])])     # source -> target
        rij = flat[j] - flat[i]                                              # [E, 3]
        d = rij.pow(2).sum(-1).sqrt()
        filters = self.pair_filters(d, table)
        hf = h.reshape(n, -1)
        saved = []
        for w, blk in zip(filters.weights(), self.interactions):
            x = blk.lin_in(hf)
            m = self.conv(x, edge_index, torch.cat([w, w]))
            v, dv = activation_and_derivative(act, blk.lin_conv(m))
            hf = hf + blk.lin_out(v)
            saved.append((w, x, dv))
        o1, do1 = activation_and_derivative(act, self.output[0](hf))
        energy = self.output[2](o1).squeeze(-1).view(r, b).sum(-1)
        gh = (do1 * self.output[2].weight.squeeze(0)) @ self.output[0].weight
        gws: list[Tensor] = [None] * len(self.interactions)                  # type: ignore[list-item]
        for k in range(len(self.interactions) - 1, -1, -1):
            blk = self.interactions[k]
            w, x, dv = saved[k]
            gm = ((gh @ blk.lin_out.weight) * dv) @ blk.lin_conv.weight
            gh = gh + self.conv(gm, edge_index, torch.cat([w, w])) @ blk.lin_in.weight
            gws[k] = gm[i] * x[j] + gm[j] * x[i]
        gd = filters.grad_distance(gws)                                      # dE/dd [E]
        fij = (gd / d).unsqueeze(-1) * rij
        grad = flat.new_zeros(n, 3).index_add(0, j, fij).index_add(0, i, -fij)
        return energy, -grad.view(r, b, 3)

    def _dense_energy_forces(self, pos: Tensor, h: Tensor, layout: Layout = "auto",
                             table: FilterTable | None = None) -> tuple[Tensor, Tensor]:
        act = self.config.activation
        pairs = self.dense_pairs(pos.shape[1], pos.device, layout, weight_grads=torch.is_grad_enabled())
        rij = pairs.diffs(pos)                                               # [R, P, 3]
        d = rij.pow(2).sum(-1).sqrt()                                        # [R, P]
        filters = self.pair_filters(d, table)
        saved = []
        for w, blk in zip(filters.weights(), self.interactions):
            x = blk.lin_in(h)
            v, dv = activation_and_derivative(act, blk.lin_conv(pairs.contract(w, x)))
            h = h + blk.lin_out(v)
            saved.append((w, x, dv))
        o1, do1 = activation_and_derivative(act, self.output[0](h))
        energy = self.output[2](o1).squeeze(-1).sum(-1)

        # reverse pass: gradients of the energy (not of a loss), written out
        w2 = self.output[2].weight.squeeze(0)                                # [OH]
        gh = (do1 * w2) @ self.output[0].weight                              # [R, B, H]
        gws: list[Tensor] = [None] * len(self.interactions)                  # type: ignore[list-item]
        for k in range(len(self.interactions) - 1, -1, -1):
            blk = self.interactions[k]
            w, x, dv = saved[k]
            gm = ((gh @ blk.lin_out.weight) * dv) @ blk.lin_conv.weight      # [R, B, F]
            gh = gh + pairs.contract(w, gm) @ blk.lin_in.weight              # W symmetric
            gws[k] = pairs.pair_products(gm, x)                              # ∂E/∂W [R, P, F]
        gd = filters.grad_distance(gws)                                      # dE/dd [R, P]
        fij = (gd / d).unsqueeze(-1) * rij                                   # dE/d r_j for each pair
        return energy, pairs.pair_to_bead(fij)                               # forces −∇E

    def _sparse(self, pos: Tensor, h: Tensor) -> Tensor:
        r, b, _ = pos.shape
        flat = pos.reshape(r * b, 3)
        method = self.neighbour_method if self.neighbour_method != "dense" else "auto"
        i, j = neighbour_pairs(pos, self.config.cutoff_upper, method=method)
        d = (flat[j] - flat[i]).pow(2).sum(-1).sqrt()                        # [E]
        edge_index = torch.stack([torch.cat([j, i]), torch.cat([i, j])])     # source -> target
        hf = h.reshape(r * b, -1)
        for w, block in zip(ExactFilters(self, d, derivatives=False).weights(), self.interactions):
            x = block.lin_in(hf)
            m = self.conv(x, edge_index, torch.cat([w, w]))
            hf = hf + block.update(m)
        return hf.view(r, b, -1)
