"""Fixtures for the WireGuard core tests; the harness itself lives in ``wg_harness``."""

import pytest

from wg_harness import Net


@pytest.fixture
def net():
    return Net()
