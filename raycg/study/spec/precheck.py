"""The spec checks that need neither torch nor the stage configs: run first, so a bad spec is refused fast.

:func:`precheck_spec` reads the file with the guarded YAML reader, and checks that it is a mapping of
known sections and that its ``grid`` is valid (including the trial limit). :func:`load_spec` still
validates everything; this only refuses the commonest mistakes before the heavy imports.
"""

from __future__ import annotations

import os

from pydantic import ConfigDict

from raycg.config import StrictModel, read_yaml, validate_config
from raycg.errors import ConfigError
from raycg.study.spec.execution import GridSpec

#: the top-level fields of :class:`raycg.study.spec.StudySpec` (a test keeps the two equal)
TOP_LEVEL_FIELDS = frozenset({
    "name", "description", "dataset", "pipeline", "priors", "training", "simulation", "evaluation", "toy",
    "analysis", "grid", "resources", "storage", "retries", "concurrency",
})


class _GridOnly(StrictModel):
    model_config = ConfigDict(extra="ignore")

    grid: GridSpec


def not_a_mapping(path: str | os.PathLike) -> ConfigError:
    return ConfigError(f"{path}: a study spec must be a mapping of sections (name, dataset, grid, ...)")


def precheck_spec(path: str | os.PathLike) -> None:
    """ConfigError (one line: file, line, field) if the spec at ``path`` is unreadable, not a mapping,
    has an unknown top-level section or an invalid grid."""
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise not_a_mapping(path)
    for key in data:
        if key not in TOP_LEVEL_FIELDS:
            line = lines.get((key,))
            where = f"{path}:{line}" if line else str(path)
            raise ConfigError(f"{where}: {key}: unknown field (check the spelling; see the documented fields)")
    validate_config(_GridOnly, data, source=str(path), lines=lines)
