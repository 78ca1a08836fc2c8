"""EnergyModel: total CG energy = prior + network, with the bead types stored inside."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from raycg.device import (
    CPU_SIM_PAIR_BLOCK,
    CPU_TRAIN_PAIR_BLOCK,
    compile_private,
    divisor_block,
    free_memory,
    model_pass_bytes,
    policy_for,
    replicas_per_block,
)
from raycg.model.schnet import CGSchNet

#: CPU values of the device policy (raycg.device), kept under their old names.
EAGER_PAIR_BLOCK = CPU_SIM_PAIR_BLOCK
TRAIN_PAIR_BLOCK = CPU_TRAIN_PAIR_BLOCK


def micro_batch_frames(batch_size: int, n_beads: int, pair_block: int = TRAIN_PAIR_BLOCK) -> int:
    """Frames per CPU micro-batch for a training batch: a divisor of ``batch_size`` (one compiled
    shape) holding about ``pair_block`` bead pairs. The forward pass runs micro-batch by micro-batch and
    so does autograd's backward, each within cache; the loss is still the whole batch's (2-core CPU,
    batch 256: 35 beads ~3.7× the frames/s of one block; 10 beads about the same). Other devices:
    :meth:`raycg.device.DevicePolicy.train_micro_batch`."""
    return divisor_block(batch_size, replicas_per_block(n_beads, pair_block))


def blocked_energy_and_forces(fn: Callable[..., tuple[Tensor, Tensor]], pos: Tensor, *args: object, block: int,
                              **kwargs: object) -> tuple[Tensor, Tensor]:
    """``fn(pos, *args, **kwargs)`` on equal-sized blocks of at most ``block`` structures (energies and
    forces concatenated)."""
    if pos.shape[0] <= block:
        return fn(pos, *args, **kwargs)
    parts = [fn(p, *args, **kwargs) for p in pos.tensor_split(math.ceil(pos.shape[0] / block))]
    return torch.cat([e for e, _ in parts]), torch.cat([f for _, f in parts])


class EnergyModel(nn.Module):
    """``forward(pos[R,B,3]) -> energy[R]`` (kcal/mol) = prior(pos) + network(pos, bead_types).

    Either part may be None (a prior-only or network-only model). Forces come from autograd:
    :meth:`energy_and_forces`. This is the object the simulation engine accepts directly.
    """

    def __init__(self, bead_types: Sequence[int] | np.ndarray | Tensor, prior: nn.Module | None = None,
                 network: CGSchNet | None = None) -> None:
        super().__init__()
        types = torch.as_tensor(np.asarray(bead_types), dtype=torch.long).reshape(-1)
        self.register_buffer("bead_types", types)
        self.prior = prior
        self.network = network
        if network is not None and types.numel() and int(types.max()) >= network.config.num_types:
            from raycg.errors import InputError

            raise InputError(f"bead type {int(types.max())} does not fit the network's embedding table "
                             f"(num_types={network.config.num_types})", hint="raise model.num_types")

    @property
    def n_beads(self) -> int:
        return int(self.bead_types.numel())

    def _check(self, pos: Tensor) -> Tensor:
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        if pos.dim() != 3 or pos.shape[1:] != (self.n_beads, 3):
            raise ValueError(f"positions must be [R, {self.n_beads}, 3], got {tuple(pos.shape)}")
        return pos

    def prior_energy(self, pos: Tensor) -> Tensor:
        pos = self._check(pos)
        if self.prior is None:
            return pos.new_zeros(pos.shape[0])
        return self.prior(pos)

    def network_energy(self, pos: Tensor) -> Tensor:
        pos = self._check(pos)
        if self.network is None:
            return pos.new_zeros(pos.shape[0])
        return self.network(pos, self.bead_types)

    def forward(self, pos: Tensor) -> Tensor:
        pos = self._check(pos)
        e = self.network_energy(pos)
        if self.prior is not None:
            e = e + self.prior(pos)
        return e

    def energy_and_forces(self, pos: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """Energies [R] and forces −∇E [R, B, 3] (kcal/mol/Å).

        The network's forces come from its fused analytic pass (dense path; no autograd over
        positions, ``torch.compile``-able) or autograd (sparse path); the prior's by autograd.
        ``create_graph=True`` keeps the result differentiable w.r.t. the weights (training).
        """
        network_eaf = self.network.energy_and_forces if self.network is not None else None
        prior_forces = functools.partial(forces_of, self.prior) if self.prior is not None else None
        return self._energy_and_forces(pos, network_eaf, prior_forces, create_graph)

    def simulation_forces(self, *, compile: bool = False, table_spacing_A: float | None = None,
                          pair_block: int | None | str = "policy",
                          traceable: bool = False) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
        """``pos -> (E, F)`` for simulation with frozen weights: :meth:`energy_and_forces` with

        - ``table_spacing_A``: the network's filters read from a :class:`FilterTable` of that grid
          spacing (Å) instead of evaluated per pair (None: exact filter networks);
        - ``compile``: the network's fused pass and the prior each ``torch.compile``d (static
          shapes: one compilation per replica count);
        - ``traceable``: nothing compiled here, but the whole pass can be traced by ``torch.compile``
          inside a larger function (the simulation engine compiles the whole integrator step around
          it, as the device policy says): the prior's forces by ``torch.func`` instead of
          ``torch.autograd.grad`` (a graph break), one block of replicas;
        - ``pair_block``: without ``compile``, evaluate blocks of replicas (replicas are
          independent). ``"policy"``: as the device policy says (:mod:`raycg.device`: on a CPU blocks
          of ~4,096 bead pairs that keep the per-pair intermediates in cache — at 1000 CLN025
          replicas the unblocked eager pass is ~3× slower per replica than at 100; on CUDA one
          block unless the pass would not fit in memory); an int: blocks of at most that many bead
          pairs; None: no blocking.

        The function's ``info`` dict says what was used (the table's measured error; ``capturable``:
        the pass has no host synchronisation, so a simulation step may be captured in a CUDA graph).
        On the 2-core CPU here, table + compile run ~5× the eager exact pass at 100+ replicas
        (benchmarks/bench_sim.py); the table's force error is ~1e-5 kcal/mol/Å (float32 level).
        """
        if traceable and compile:
            raise ValueError("traceable forces are compiled by the caller: pass compile=False")
        info: dict = {"compiled": bool(compile), "filter_table": None, "traceable": traceable,
                      "capturable": self.network is None or self.network.use_dense(self.n_beads)}
        network_eaf = None
        if self.network is not None:
            network_eaf = self.network.energy_and_forces
            if table_spacing_A is not None:
                table = self.network.filter_table(table_spacing_A)
                info["filter_table"] = {"spacing_A": table.spacing, "nodes": table.n_nodes,
                                        "max_abs_error": table.max_error,
                                        "max_relative_error": table.max_relative_error}
                network_eaf = functools.partial(self.network.energy_and_forces, table=table)
            if compile:
                network_eaf = compile_private(network_eaf, dynamic=False)
        prior_forces = None
        if self.prior is not None:
            prior = compile_private(self.prior, dynamic=False) if compile else self.prior
            prior_forces = functools.partial(forces_of, prior, traceable=traceable)
        block_for = self._replica_blocks(None if compile or traceable else pair_block)
        info["replica_block"] = None

        def energy_and_forces(pos: Tensor) -> tuple[Tensor, Tensor]:
            block = block_for(pos) if pos.dim() == 3 else None
            if block is None:
                return self._energy_and_forces(pos, network_eaf, prior_forces, False)
            info["replica_block"] = block
            return blocked_energy_and_forces(self._energy_and_forces, pos, network_eaf, prior_forces, False,
                                             block=block)

        energy_and_forces.info = info                                        # type: ignore[attr-defined]
        return energy_and_forces

    def _replica_blocks(self, pair_block: int | None | str) -> Callable[[Tensor], int | None]:
        """``pos -> replicas per block`` (None: one block) for :meth:`simulation_forces`."""
        if pair_block is None:
            return lambda pos: None
        if pair_block != "policy":
            fit = replicas_per_block(self.n_beads, int(pair_block))
            return lambda pos: None if pos.shape[0] <= fit else fit
        cache: dict[tuple, int | None] = {}

        def block_for(pos: Tensor) -> int | None:
            key = (pos.shape[0], pos.dtype, pos.device)
            if key not in cache:
                each = (model_pass_bytes(self.network.config, self.n_beads, pos.dtype, training=False)
                        if self.network is not None else 0)
                cache[key] = policy_for(pos.device).sim_block(pos.shape[0], self.n_beads, each,
                                                              free_memory(pos.device))
            return cache[key]

        return block_for

    def _energy_and_forces(self, pos: Tensor, network_eaf, prior_forces, create_graph: bool) -> tuple[Tensor, Tensor]:
        pos = self._check(pos)
        if network_eaf is not None:
            e, f = network_eaf(pos, self.bead_types, create_graph=create_graph)
        else:
            e, f = pos.new_zeros(pos.shape[0]), torch.zeros_like(pos)
        if prior_forces is not None:
            ep, fp = prior_forces(pos, create_graph=create_graph)
            e, f = e + ep, f + fp
        if not create_graph:
            e, f = e.detach(), f.detach()
        return e, f


def forces_of(module: nn.Module, pos: Tensor, *, create_graph: bool = False,
              traceable: bool = False) -> tuple[Tensor, Tensor]:
    """Energies and forces of any ``pos -> energy`` module by autograd. ``traceable``: by
    ``torch.func`` instead of ``torch.autograd.grad`` (a graph break), so that ``torch.compile``
    traces it into the caller's graph; frozen weights only (no ``create_graph``)."""
    if traceable:
        if create_graph:
            raise ValueError("traceable forces keep no graph: create_graph must be False")

        def total(p: Tensor) -> tuple[Tensor, Tensor]:
            e = module(p)
            return e.sum(), e

        grad, e = torch.func.grad(total, has_aux=True)(pos)
        return e.detach(), -grad.detach()
    with torch.enable_grad():
        if not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        e = module(pos)
        (g,) = torch.autograd.grad(e.sum(), pos, create_graph=create_graph)
    return (e if create_graph else e.detach()), -g

