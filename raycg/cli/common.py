"""Checks shared by the command handlers, done at the command-line boundary before any work."""

from __future__ import annotations

#: what a dataset argument accepts besides a directory: the reference that ships in the package
EMBEDDED = "embedded"
DATASET_HELP = 'raycg CG dataset directory, or "embedded" (the packaged CLN025 reference)'


def dataset_arg(value: str) -> str:
    """argparse ``type`` of every dataset argument: a directory as given, or ``embedded``, the packaged
    reference written once into the cache (``raycg.synth.embedded_dataset``), as a study spec accepts it."""
    if value == EMBEDDED:
        from raycg.synth import embedded_dataset

        return str(embedded_dataset())
    return value


def check_device(device: str, *, where: str = "--device") -> None:
    """InputError unless ``device`` names a torch device this machine has (cpu, cuda, cuda:N, mps)."""
    import torch

    from raycg.errors import InputError

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown device {device!r}", where=where, hint="use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for but CUDA is not available on this machine",
                             where=where, hint="use cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise InputError(f"device {device!r} asked for but this machine has {n} CUDA device(s)",
                             where=where, hint=f"use cuda:0 .. cuda:{n - 1} or cpu")
        return
    if dev.type == "mps" and torch.backends.mps.is_available():
        return
    raise InputError(f"device {device!r} is not available (raycg runs on cpu or cuda)", where=where, hint="use cpu")
