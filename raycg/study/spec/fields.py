"""Dotted field paths (``training.optim.lr``) on a validated spec: read one, set one with validation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from raycg.config import format_validation_error
from raycg.errors import ConfigError

#: Spec sections whose fields a grid sweep or a search may vary.
SWEEPABLE_SECTIONS = frozenset({"priors", "training", "simulation", "evaluation", "toy"})


def get_field(obj: Any, key: str) -> Any:
    """The value at ``key`` (dotted) in a model or mapping tree; KeyError if there is no such field."""
    node = obj
    for part in key.split("."):
        if isinstance(node, BaseModel) and part in type(node).model_fields:
            node = getattr(node, part)
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(key)
    return node


def set_field(model: BaseModel, key: str, value: Any, *, source: str = "spec") -> None:
    """Set ``key`` (dotted) in ``model`` in place, validated like the spec file's own value.

    The leaf model validates the value (``validate_assignment``); each enclosing model is then
    re-assigned its (changed) child so that its own cross-field checks run too. A rejected value
    raises :class:`ConfigError` naming ``key``.
    """
    parts = key.split(".")
    chain: list[tuple[BaseModel, str]] = []
    node: Any = model
    for part in parts[:-1]:
        if not isinstance(node, BaseModel) or part not in type(node).model_fields:
            raise KeyError(key)
        chain.append((node, part))
        node = getattr(node, part)
    if not isinstance(node, BaseModel) or parts[-1] not in type(node).model_fields:
        raise KeyError(key)
    try:
        setattr(node, parts[-1], value)
        for parent, name in reversed(chain):
            setattr(parent, name, getattr(parent, name))
    except ValidationError as err:
        prefix = ".".join(parts[:-1]) if err.errors()[0]["loc"] else key
        raise ConfigError(format_validation_error(err, source, prefix=prefix)) from None
