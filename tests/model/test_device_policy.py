"""The device policy: CPU values as measured there; CUDA whole batches, capture, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import raycg.device as device
import raycg.model.energy as energy
from raycg.device import CPU, CUDA, OTHER, CompileFallback, pass_bytes, policy_for

MB = 2**20


def test_policy_follows_the_device_type():
    assert policy_for("cpu") is CPU and policy_for(torch.device("cpu")) is CPU
    assert policy_for("cuda") is CUDA and policy_for("cuda:1") is CUDA
    assert policy_for("mps") is OTHER


def test_cpu_keeps_its_measured_cache_blocking():
    # 10 beads: 45 pairs, 4096 // 45 = 91 replicas per eager block; 8192 // 45 = 182 frames per micro-batch
    assert CPU.sim_block(91, 10, bytes_per_replica=MB, free_bytes=None) is None
    assert CPU.sim_block(100, 10, bytes_per_replica=MB, free_bytes=None) == 91
    assert CPU.sim_block(100, 10, bytes_per_replica=MB, free_bytes=10**15) == 91     # memory plays no part
    assert CPU.train_micro_batch(256, 10, bytes_per_frame=MB, free_bytes=None) == 128
    assert CPU.train_micro_batch(256, 10, MB, None) == energy.micro_batch_frames(256, 10)
    assert CPU.host_health_check and CPU.capture_replicas is None and not CPU.deterministic_sim


def test_cuda_runs_whole_batches_unless_memory_is_short():
    free = 80 * 2**30
    assert CUDA.sim_block(40_960, 10, bytes_per_replica=MB, free_bytes=free) is None            # half of 80 GiB
    assert CUDA.sim_block(100_000, 10, bytes_per_replica=MB, free_bytes=free) == 40_960
    assert CUDA.train_micro_batch(4096, 10, bytes_per_frame=3 * MB, free_bytes=free) == 4096
    m = CUDA.train_micro_batch(4096, 35, bytes_per_frame=40 * MB, free_bytes=free)           # 1,024 fit
    assert m == 1024 and 4096 % m == 0
    assert CUDA.train_micro_batch(4096, 35, 40 * MB, free_bytes=None) == 4096                # size unknown
    assert CUDA.sim_block(10, 10, bytes_per_replica=2**40, free_bytes=free) == 1               # at least one


def test_compile_thresholds():
    for policy in (CPU, CUDA):
        assert not policy.use_compile("auto", device.SIM_COMPILE_AUTO_MIN_STEPS - 1, training=False)
        assert policy.use_compile("auto", device.SIM_COMPILE_AUTO_MIN_STEPS, training=False)
        assert not policy.use_compile("auto", device.TRAIN_COMPILE_AUTO_MIN_STEPS - 1, training=True)
        assert policy.use_compile("auto", device.TRAIN_COMPILE_AUTO_MIN_STEPS, training=True)
        assert policy.use_compile(True, 1, training=True) and not policy.use_compile(False, 10**9, training=False)


def test_capture_only_on_cuda_within_the_replica_range_and_for_capturable_passes():
    assert not CPU.use_capture(True, 128, capturable=True) and not CPU.use_capture("auto", 128, True)
    assert CUDA.use_capture("auto", 32, True) and CUDA.use_capture("auto", 1024, True)
    assert not CUDA.use_capture("auto", 31, True) and not CUDA.use_capture("auto", 1025, True)
    assert CUDA.use_capture(True, 100_000, True)                     # asked for explicitly
    assert not CUDA.use_capture(True, 128, capturable=False) and not CUDA.use_capture(False, 128, True)
    from raycg.sim import SimulationConfig

    assert SimulationConfig(device="cuda").use_capture(128, True)
    assert not SimulationConfig(device="cuda", capture=False).use_capture(128, True)
    assert not SimulationConfig().use_capture(128, True)


def test_deterministic_kernels_only_while_a_cuda_simulation_runs():
    before = torch.are_deterministic_algorithms_enabled()
    with CPU.simulation_context():
        assert torch.are_deterministic_algorithms_enabled() == before
    with CUDA.simulation_context():
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_pass_size_estimate():
    cln = pass_bytes(10, hidden=128, filters=128, interactions=3, rbf=50)
    assert 0.5 * MB < cln < 2 * MB                          # ~0.9 MB per CLN025 replica (float32)
    assert pass_bytes(10, hidden=128, filters=128, interactions=3, rbf=50, training=True) == 3 * cln
    assert pass_bytes(10, hidden=128, filters=128, interactions=3, rbf=50, dtype_bytes=8) == 2 * cln
    assert pass_bytes(35, hidden=128, filters=128, interactions=3, rbf=50) > 10 * cln


def test_energy_model_blocks_as_the_policy_says(monkeypatch):
    """The simulation pass asks the policy: CPU pair blocks; with a CUDA policy one block unless memory
    is short (simulated here on CPU tensors), and the blocks give the same forces."""
    from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel

    torch.manual_seed(0)
    net = CGSchNet(CGSchNetConfig(num_types=6, hidden_channels=8, num_filters=8, num_interactions=1, num_rbf=6))
    model = EnergyModel(np.arange(6) % 6, network=net).double()
    pos = torch.randn(300, 6, 3, dtype=torch.float64) * 3
    whole = model.simulation_forces(pair_block=None)(pos)
    cpu = model.simulation_forces()
    assert torch.allclose(cpu(pos)[1], whole[1], atol=1e-12) and cpu.info["replica_block"] == 4096 // 15
    monkeypatch.setattr(energy, "policy_for", lambda dev: CUDA)
    monkeypatch.setattr(energy, "free_memory", lambda dev: 10**12)
    roomy = model.simulation_forces()
    assert torch.equal(roomy(pos)[1], whole[1]) and roomy.info["replica_block"] is None
    each = device.model_pass_bytes(net.config, 6, torch.float64, training=False)
    monkeypatch.setattr(energy, "free_memory", lambda dev: 2 * 100 * each)      # half of it: 100 replicas
    short = model.simulation_forces()
    assert torch.allclose(short(pos)[1], whole[1], atol=1e-12) and short.info["replica_block"] == 100


def test_compile_fallback_says_so_once_and_runs_eagerly(capsys):
    calls = []

    def broken(x):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    fn = CompileFallback(broken, lambda: (lambda x: calls.append(x) or x + 1), who="raycg.test", then="running eagerly",
                         detail=True)
    assert fn(1) == 2 and fn(2) == 3 and calls == [1, 2]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "raycg.test: torch.compile failed (RuntimeError: InvalidCxxCompiler" in err
    assert fn.error == "RuntimeError"
    ok = CompileFallback(lambda x: x * 10, lambda: pytest.fail("no fallback needed"), who="t", then="t")
    assert ok(3) == 30 and ok.error is None
