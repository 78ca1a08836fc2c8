"""Typed, early-validated configuration.

Every stage defines its config as a :class:`StrictModel` (pydantic, unknown fields rejected).
:func:`load_config` reads YAML and turns validation errors into one line that names the file,
the line and the dotted field, e.g.::

    studies/x.yaml:12: training.lr: Input should be greater than 0
"""

from __future__ import annotations

import contextvars
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from raycg.errors import ConfigError
from raycg.utils.io import not_regular_file

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

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        """``true``/``false`` is not a number: refuse it where a field (or its items) must be int/float."""
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _has_bool(value) and _wants_number_not_bool(field.annotation):
            raise ValueError("expected a number, got a boolean (true/false)")
        return value


def _has_bool(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is a bool or a list/dict holding one (a few levels down)."""
    if isinstance(value, bool):
        return True
    if depth > 3:
        return False
    if isinstance(value, (list, tuple)):
        return any(_has_bool(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_has_bool(v, depth + 1) for v in value.values())
    return False


def _leaf_types(annotation: Any) -> set:
    """The types a field annotation ends in (through unions, lists, dicts, Optional, Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return {annotation}
    if origin is typing.Literal:
        return {object}
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        args = args[:1]
    elif origin is dict or getattr(origin, "__name__", "") == "Mapping":
        args = args[1:]
    return set().union(*(_leaf_types(a) for a in args)) if args else {object}


def _wants_number_not_bool(annotation: Any) -> bool:
    leaves = _leaf_types(annotation)
    return bool(leaves & {int, float}) and not leaves & {bool, Any, object}


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


#: limits on a YAML file a user gives (a config or spec is a few hundred nodes)
MAX_YAML_BYTES = 16 * 1024 * 1024
MAX_YAML_DEPTH = 32
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting, many aliases and duplicate mapping keys (ConfigError)."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source, self.depth, self.aliases = source, 0, 0

    def refuse(self, mark: yaml.Mark | None, message: str) -> ConfigError:
        where = f"{self.source}:{mark.line + 1}" if mark is not None else self.source
        return ConfigError(f"{where}: {message}")

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise self.refuse(self.peek_event().start_mark,
                                  f"more than {MAX_YAML_ALIASES} YAML aliases (*name); write the values out")
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise self.refuse(self.peek_event().start_mark,
                                  f"nested deeper than {MAX_YAML_DEPTH} levels; a raycg config is a few levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                raise self.refuse(key_node.start_mark, f"duplicate key {key_node.value!r} (lines "
                                                       f"{seen[key_node.value]} and {line}); keep one")
            seen[key_node.value] = line
        return node


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes in the tree ``node`` stands for once every alias is expanded (linear time: memoised)."""
    if id(node) not in memo:
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        memo[id(node)] = 1 + sum(_expanded_size(c, memo) for c in children)
    return memo[id(node)]


def _read_text(path: Path) -> str:
    """The UTF-8 text of a regular file; ConfigError naming the file (and byte offset) otherwise."""
    problem = not_regular_file(path)
    if problem == "not found":
        raise ConfigError(f"config file not found: {path}", hint="check the path")
    if problem is not None:
        raise ConfigError(f"{path}: {problem}", hint="give the path of a YAML file")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: {size} bytes is too large for a config (limit {MAX_YAML_BYTES})")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return _decode_utf8(raw, path)


def _decode_utf8(raw: bytes, path: Path) -> str:
    """``raw`` as UTF-8 (a leading BOM dropped); ConfigError naming the first bad byte otherwise."""
    hint = "save the file as UTF-8"
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ConfigError(f"{path}: byte 0: the file is UTF-16, not UTF-8", hint=hint)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: byte {exc.start}: 0x{raw[exc.start]:02x} is not UTF-8 text",
                          hint=hint) from None
    if "\x00" in text:
        offset = raw.index(b"\x00")
        raise ConfigError(f"{path}: byte {offset}: NUL byte (UTF-16 or binary data, not UTF-8 text)", hint=hint)
    return text


def _compose(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """Compose and construct one YAML document with :class:`_GuardedLoader` and an alias budget."""
    loader = _GuardedLoader(text, source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if loader.aliases:
            size = _expanded_size(node, {})
            if size > MAX_YAML_NODES:
                raise loader.refuse(None, f"YAML aliases expand to {size} nodes (limit {MAX_YAML_NODES}); "
                                          "write the values out")
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def load_yaml_text(path: str | os.PathLike) -> tuple[Any, dict[tuple, int]]:
    """Read a user's YAML file safely: the data and a map of key paths to line numbers.

    Only a regular, UTF-8 file of at most :data:`MAX_YAML_BYTES` is read; nesting deeper than
    :data:`MAX_YAML_DEPTH`, more than :data:`MAX_YAML_ALIASES` aliases, aliases expanding to more
    than :data:`MAX_YAML_NODES` nodes, duplicate keys and invalid YAML raise a one-line ConfigError.
    An empty file is ``{}``.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        data, node = _compose(text, str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    lines = _node_lines(node) if node is not None else {}
    return (data if data is not None else {}), lines


#: the name every reader of a config uses
read_yaml = load_yaml_text


def validate_config(model: type[T], data: Any, *, source: str | None = None,
                    lines: dict[tuple, int] | None = None, prefix: str = "") -> T:
    """Validate a mapping against ``model``; raise ConfigError naming the field (under ``prefix``) on failure."""
    token = _VALIDATING.set(True)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, lines, prefix=prefix)) from None
    finally:
        _VALIDATING.reset(token)


def load_config(model: type[T], path: str | os.PathLike) -> T:
    """Read and validate a YAML config file into ``model``."""
    data, lines = read_yaml(path)
    return validate_config(model, data, source=str(path), lines=lines)


def dump_config(cfg: BaseModel) -> str:
    """YAML text of a config (round-trips through :func:`load_config`)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
