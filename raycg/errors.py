"""Errors that mean "the user's input is wrong": the CLI prints them as one line and exits 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: what is wrong, where (file, field, frame), and what to do.

    The message must be one line. The CLI prints ``error: <message>`` and exits with status 2.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        parts = []
        if where:
            parts.append(f"{where}: ")
        parts.append(message.rstrip("."))
        if hint:
            parts.append(f"; {hint.rstrip('.')}")
        super().__init__("".join(parts).replace("\n", " "))


class ConfigError(InputError):
    """A configuration field is missing, unknown or out of range."""


class DatasetError(InputError):
    """A dataset on disk is malformed or physically implausible."""
