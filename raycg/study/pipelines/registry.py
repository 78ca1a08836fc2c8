"""The registry of pipelines: a name in a spec -> the class that runs it (imported on first use)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raycg.study.pipelines.base import Pipeline

#: name -> "module:Class". A new pipeline is one entry here and one module implementing Pipeline.
PIPELINES: dict[str, str] = {
    "cgschnet": "raycg.study.pipelines.cgschnet:CGSchNetPipeline",
    "toy": "raycg.study.pipelines.toy:ToyPipeline",
}

_INSTANCES: dict[str, Pipeline] = {}


def pipeline_names() -> list[str]:
    return list(PIPELINES)


def get_pipeline(name: str) -> Pipeline:
    """The pipeline called ``name`` (one instance per process); ValueError if there is none."""
    if name not in _INSTANCES:
        if name not in PIPELINES:
            raise ValueError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
        module, cls = PIPELINES[name].split(":")
        _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[name]
