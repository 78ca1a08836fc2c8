"""CG energy models: exact neighbour lists, CGSchNet, prior + network energy, model files."""

from raycg.model.config import CGSchNetConfig
from raycg.utils.lazy import lazy_exports

#: imported on first use (torch): ``CGSchNetConfig`` (``training.model``) validates without it
_LAZY = {
    "EnergyModel": "raycg.model.energy", "blocked_energy_and_forces": "raycg.model.energy",
    "forces_of": "raycg.model.energy", "micro_batch_frames": "raycg.model.energy",
    "load_model": "raycg.model.io", "read_model_meta": "raycg.model.io",
    "save_model": "raycg.model.io", "neighbour_pairs": "raycg.model.neighbours",
    "CGSchNet": "raycg.model.schnet", "FilterTable": "raycg.model.schnet",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["CGSchNet", "CGSchNetConfig", "EnergyModel", "FilterTable", "blocked_energy_and_forces", "forces_of",
           "load_model", "micro_batch_frames", "neighbour_pairs", "read_model_meta", "save_model"]
