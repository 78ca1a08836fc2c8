"""Fixtures for the data tests (helpers live in data_helpers.py: a unique module name, so test
folders never shadow each other's conftest when the whole suite runs in one session)."""

import pytest

from .data_helpers import harmonic_chain, make_dataset  # noqa: F401


@pytest.fixture
def chain_dataset():
    return make_dataset()
