"""CG energy models: exact neighbour lists, CGSchNet, prior + network energy, model files."""

from raycg.model.energy import EnergyModel, blocked_energy_and_forces, forces_of, micro_batch_frames
from raycg.model.io import load_model, read_model_meta, save_model
from raycg.model.neighbours import neighbour_pairs
from raycg.model.schnet import CGSchNet, CGSchNetConfig, FilterTable

__all__ = ["CGSchNet", "CGSchNetConfig", "EnergyModel", "FilterTable", "blocked_energy_and_forces", "forces_of", "load_model", "micro_batch_frames", "neighbour_pairs",
           "read_model_meta", "save_model"]
