"""CGSchNet: SchNet for coarse-grained beads, built for speed on small proteins.

Architecture (the CGSchNet of the CG literature):
bead-type embedding → ``num_interactions`` interaction blocks, each a continuous-filter
convolution (filter = MLP of a radial basis of the pair distance — ExpNormal or Gaussian —
times a cosine cutoff with lower/upper bounds), with residual updates → per-bead output MLP →
sum per structure. ``tanh`` by default, sum aggregation.

Two exact execution paths give the same numbers (tested):

- **dense** (small proteins, every pair in range; default up to ``dense_max_beads``): positions
  stay ``[R, B, 3]``; filters are evaluated once per *unordered* pair (W_ij = W_ji halves the
  dominant cost), then gathered into a symmetric ``[R, B, B, F]`` tensor and contracted. No
  neighbour list, no scatter, no data-dependent Python control flow (``torch.compile`` friendly).
- **sparse** (larger proteins): exact neighbour list in plain torch
  (:mod:`raycg.model.neighbours`), filters once per unordered pair in range, messages passed in
  both directions by a torch-geometric ``MessagePassing`` convolution (sum aggregation).

The first layer of every interaction's filter MLP reads the same radial basis, so those layers
are fused into one matrix multiply.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from raycg.config import StrictModel
from raycg.model.neighbours import neighbour_pairs, triu_pairs


class CGSchNetConfig(StrictModel):
    """Sizes and options of CGSchNet (anchor defaults: hidden/filters 128, ExpNormal basis, tanh)."""

    num_types: int = Field(32, ge=1, description="size of the bead-type embedding table (max type + 1 at least)")
    hidden_channels: int = Field(128, ge=1)
    num_filters: int = Field(128, ge=1)
    num_interactions: int = Field(3, ge=1)
    num_rbf: int = Field(50, ge=2, description="number of radial basis functions")
    rbf: Literal["expnormal", "gaussian"] = "expnormal"
    trainable_rbf: bool = False
    cutoff_lower: float = Field(0.0, ge=0.0, description="Å; filters vanish below it (when > 0)")
    cutoff_upper: float = Field(12.0, gt=0.0, description="Å; filters vanish beyond it")
    activation: Literal["tanh", "ssp", "silu"] = "tanh"
    output_hidden_channels: int | None = Field(None, ge=1, description="output MLP width (default hidden/2)")
    neighbour_method: Literal["auto", "dense", "blocked", "cell"] = "auto"
    dense_max_beads: int = Field(64, ge=2, description="auto: dense all-pairs path up to this many beads")

    @model_validator(mode="after")
    def _cutoffs(self) -> CGSchNetConfig:
        if self.cutoff_upper <= self.cutoff_lower:
            raise ValueError(f"cutoff_upper ({self.cutoff_upper}) must exceed cutoff_lower ({self.cutoff_lower})")
        return self


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
# the network


class CGSchNet(nn.Module):
    """CGSchNet energy network: ``forward(pos[R,B,3], types[B] or [R,B]) -> energy[R]`` (kcal/mol)."""

    def __init__(self, config: CGSchNetConfig | None = None, **overrides) -> None:
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

    def _filters_in(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """Shared first filter layer for all interactions, and the cutoff envelope."""
        z = self.filter_act(self.filter_in(self.basis(d)))
        return z, self.cutoff(d).unsqueeze(-1)

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

    def _dense(self, pos: Tensor, h: Tensor) -> Tensor:
        r, b, _ = pos.shape
        f = self.config.num_filters
        i, j = triu_pairs(b, pos.device)
        n_pairs = i.numel()
        d = (pos[:, j] - pos[:, i]).pow(2).sum(-1).sqrt()                    # [R, P]
        z, env = self._filters_in(d)                                         # [R, P, nI*F], [R, P, 1]
        # symmetric gather map: (i, j) and (j, i) -> pair p; diagonal -> an all-zero slot
        full = torch.full((b, b), n_pairs, dtype=torch.long, device=pos.device)
        p = torch.arange(n_pairs, device=pos.device)
        full[i, j] = p
        full[j, i] = p
        full = full.reshape(-1)
        zero = pos.new_zeros(r, 1, f)
        for k, block in enumerate(self.interactions):
            w = block.filter_out(z[..., k * f : (k + 1) * f]) * env          # [R, P, F]
            wf = torch.cat([w, zero], dim=1)[:, full].view(r, b, b, f)       # [R, B, B, F]
            x = block.lin_in(h)                                              # [R, B, F]
            m = (wf * x.unsqueeze(1)).sum(2)                                 # Σ_j W_ij x_j
            h = h + block.update(m)
        return h

    # -- fused energy and forces ---------------------------------------------------------------
    def energy_and_forces(self, pos: Tensor, types: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """Energy [R] and forces −∇E [R,B,3] in one pass.

        The gradient is written out analytically (a forward pass plus a hand-written
        reverse pass, no autograd over positions), so the forces are an ordinary differentiable
        function of the weights: training needs only first-order autograd, and the whole pass can
        be ``torch.compile``d. Sparse path: the same reverse pass on the neighbour list, with the
        messages passed by the torch-geometric ``MessagePassing`` convolution.
        """
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        r, b, _ = pos.shape
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            h = self._embed(types.to(pos.device), r, b).to(pos.dtype)
            if self.use_dense(b):
                return self._dense_energy_forces(pos, h)
            return self._sparse_energy_forces(pos, h)

    def _sparse_energy_forces(self, pos: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """The fused pass on a neighbour list (messages by the MessagePassing convolution)."""
        c = self.config
        r, b, _ = pos.shape
        n = r * b
        f, act = c.num_filters, c.activation
        flat = pos.reshape(n, 3)
        method = self.neighbour_method if self.neighbour_method != "dense" else "auto"
        i, j = neighbour_pairs(pos, c.cutoff_upper, method=method)
        edge_index = torch.stack([torch.cat([j, i]), torch.cat([i, j])])     # source -> target
        rij = flat[j] - flat[i]                                              # [E, 3]
        d = rij.pow(2).sum(-1).sqrt()
        phi, dphi = self.basis.with_derivative(d)
        env, denv = self.cutoff.with_derivative(d)
        z, dz = activation_and_derivative(act, self.filter_in(phi))
        env2 = env.unsqueeze(-1)
        hf = h.reshape(n, -1)
        saved = []
        for k, blk in enumerate(self.interactions):
            q = blk.filter_out(z[..., k * f : (k + 1) * f])
            w = q * env2
            x = blk.lin_in(hf)
            m = self.conv(x, edge_index, torch.cat([w, w]))
            v, dv = activation_and_derivative(act, blk.lin_conv(m))
            hf = hf + blk.lin_out(v)
            saved.append((q, w, x, dv))
        o1, do1 = activation_and_derivative(act, self.output[0](hf))
        energy = self.output[2](o1).squeeze(-1).view(r, b).sum(-1)
        gh = (do1 * self.output[2].weight.squeeze(0)) @ self.output[0].weight
        gz_parts: list[Tensor] = [None] * len(self.interactions)             # type: ignore[list-item]
        gd = None
        for k in range(len(self.interactions) - 1, -1, -1):
            blk = self.interactions[k]
            q, w, x, dv = saved[k]
            gm = ((gh @ blk.lin_out.weight) * dv) @ blk.lin_conv.weight
            gh = gh + self.conv(gm, edge_index, torch.cat([w, w])) @ blk.lin_in.weight
            gw = gm[i] * x[j] + gm[j] * x[i]
            gz_parts[k] = (gw * env2) @ blk.filter_out.weight
            ge = (gw * q).sum(-1)
            gd = ge * denv if gd is None else gd + ge * denv
        gphi = (torch.cat(gz_parts, dim=-1) * dz) @ self.filter_in.weight
        gd = gd + (gphi * dphi).sum(-1)
        fij = (gd / d).unsqueeze(-1) * rij
        grad = flat.new_zeros(n, 3).index_add(0, j, fij).index_add(0, i, -fij)
        return energy, -grad.view(r, b, 3)

    def _dense_energy_forces(self, pos: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        r, b, _ = pos.shape
        f, act = c.num_filters, c.activation
        i, j = triu_pairs(b, pos.device)
        n_pairs = i.numel()
        rij = pos[:, j] - pos[:, i]                                          # [R, P, 3]
        d = rij.pow(2).sum(-1).sqrt()                                        # [R, P]
        phi, dphi = self.basis.with_derivative(d)                            # [R, P, K]
        env, denv = self.cutoff.with_derivative(d)                           # [R, P]
        z, dz = activation_and_derivative(act, self.filter_in(phi))         # [R, P, nI*F]
        full = torch.full((b, b), n_pairs, dtype=torch.long, device=pos.device)
        p = torch.arange(n_pairs, device=pos.device)
        full[i, j] = p
        full[j, i] = p
        full = full.reshape(-1)
        zero = pos.new_zeros(r, 1, f)
        env3 = env.unsqueeze(-1)

        def contract(w: Tensor, x: Tensor) -> Tensor:                       # Σ_j W_ij ⊙ x_j
            wf = torch.cat([w, zero], dim=1)[:, full].view(r, b, b, f)
            return (wf * x.unsqueeze(1)).sum(2)

        saved = []
        for k, blk in enumerate(self.interactions):
            q = blk.filter_out(z[..., k * f : (k + 1) * f])                  # filter before the envelope
            w = q * env3
            x = blk.lin_in(h)
            m = contract(w, x)
            v, dv = activation_and_derivative(act, blk.lin_conv(m))
            h = h + blk.lin_out(v)
            saved.append((q, w, x, dv))
        o1, do1 = activation_and_derivative(act, self.output[0](h))
        energy = self.output[2](o1).squeeze(-1).sum(-1)

        # reverse pass: gradients of the energy (not of a loss), written out
        w2 = self.output[2].weight.squeeze(0)                                # [OH]
        gh = (do1 * w2) @ self.output[0].weight                              # [R, B, H]
        gz_parts: list[Tensor] = [None] * len(self.interactions)             # type: ignore[list-item]
        gd = None
        for k in range(len(self.interactions) - 1, -1, -1):
            blk = self.interactions[k]
            q, w, x, dv = saved[k]
            gu = (gh @ blk.lin_out.weight) * dv
            gm = gu @ blk.lin_conv.weight                                    # [R, B, F]
            gx = contract(w, gm)                                             # W symmetric
            gh = gh + gx @ blk.lin_in.weight
            gw = gm[:, i] * x[:, j] + gm[:, j] * x[:, i]                     # [R, P, F]
            gz_parts[k] = (gw * env3) @ blk.filter_out.weight
            ge = (gw * q).sum(-1)                                            # ∂E/∂env [R, P]
            gd = ge * denv if gd is None else gd + ge * denv
        ga = torch.cat(gz_parts, dim=-1) * dz                                # [R, P, nI*F]
        gphi = ga @ self.filter_in.weight                                    # [R, P, K]
        gd = gd + (gphi * dphi).sum(-1)                                      # dE/dd [R, P]
        fij = (gd / d).unsqueeze(-1) * rij                                   # dE/d r_j for each pair
        grad = fij.new_zeros(r, b, 3)
        grad = grad.index_add(1, j, fij).index_add(1, i, -fij)
        return energy, -grad

    def _sparse(self, pos: Tensor, h: Tensor) -> Tensor:
        r, b, _ = pos.shape
        f = self.config.num_filters
        flat = pos.reshape(r * b, 3)
        method = self.neighbour_method if self.neighbour_method != "dense" else "auto"
        i, j = neighbour_pairs(pos, self.config.cutoff_upper, method=method)
        d = (flat[j] - flat[i]).pow(2).sum(-1).sqrt()                        # [E]
        z, env = self._filters_in(d)
        edge_index = torch.stack([torch.cat([j, i]), torch.cat([i, j])])     # source -> target
        hf = h.reshape(r * b, -1)
        for k, block in enumerate(self.interactions):
            w = block.filter_out(z[..., k * f : (k + 1) * f]) * env          # [E, F]
            x = block.lin_in(hf)
            m = self.conv(x, edge_index, torch.cat([w, w]))
            hf = hf + block.update(m)
        return hf.view(r, b, -1)
