"""Typed, early-validated configuration.

Every stage defines its config as a :class:`StrictModel` (pydantic, unknown fields rejected).
:func:`load_config` reads YAML and turns validation errors into one line that names the file,
the line and the dotted field, e.g.::

    studies/x.yaml:12: training.lr: Input should be greater than 0
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from raycg.errors import ConfigError

T = TypeVar("T", bound=BaseModel)


_VALIDATING = contextvars.ContextVar("raycg_config_validating", default=False)


class StrictModel(BaseModel):
    """Base for all raycg configs: unknown fields are errors, values are validated on assignment.

    Constructing a config directly (``TrainConfig(lr=-1)``) raises :class:`ConfigError` with one
    line naming the class and field. Nested models and :func:`validate_config` keep pydantic's own
    errors until the outermost level, so the message names the full dotted field and YAML line.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    def __init__(self, **data: Any) -> None:
        if _VALIDATING.get():
            super().__init__(**data)
            return
        token = _VALIDATING.set(True)
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, type(self).__name__)) from None
        finally:
            _VALIDATING.reset(token)


def _node_lines(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Map dotted key paths to 1-based line numbers in a composed YAML node tree."""
    out: dict[tuple, int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[prefix + (key,)] = key_node.start_mark.line + 1
            sub = _node_lines(value_node, prefix + (key,))
            sub.pop(prefix + (key,), None)
            out.update(sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_node_lines(item, prefix + (i,)))
    return out


def _line_for(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def format_validation_error(err: ValidationError, source: str | None = None,
                            lines: dict[tuple, int] | None = None, prefix: str = "") -> str:
    """One line for the first error of a pydantic ValidationError: ``file:line: field: message``."""
    first = err.errors()[0]
    loc = tuple(x for x in first["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    field = ".".join(str(x) for x in loc) or "<root>"
    if prefix:
        field = f"{prefix}.{field}" if field != "<root>" else prefix
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; see the documented fields)"
    elif first["type"] == "missing":
        msg = "required field is missing"
    where = source or "config"
    line = _line_for(lines or {}, loc)
    if line is not None:
        where = f"{where}:{line}"
    more = len(err.errors()) - 1
    tail = f" (+{more} more error{'s' if more > 1 else ''})" if more > 0 else ""
    return f"{where}: {field}: {msg}{tail}"


def read_yaml(path: str | os.PathLike) -> tuple[Any, dict[tuple, int]]:
    """Read a YAML file safely; return the data and a map of key paths to line numbers."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", hint="check the path")
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    lines = _node_lines(node) if node is not None else {}
    return (data if data is not None else {}), lines


def validate_config(model: type[T], data: Any, *, source: str | None = None,
                    lines: dict[tuple, int] | None = None) -> T:
    """Validate a mapping against ``model``; raise ConfigError naming the field on failure."""
    token = _VALIDATING.set(True)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, lines)) from None
    finally:
        _VALIDATING.reset(token)


def load_config(model: type[T], path: str | os.PathLike) -> T:
    """Read and validate a YAML config file into ``model``."""
    data, lines = read_yaml(path)
    return validate_config(model, data, source=str(path), lines=lines)


def dump_config(cfg: BaseModel) -> str:
    """YAML text of a config (round-trips through :func:`load_config`)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
