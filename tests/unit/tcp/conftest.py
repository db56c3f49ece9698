"""Fixtures every TCP state test starts from: a fake clock and a listening stack."""

import pytest

from .helpers import Clock, make_stack


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def stack():
    return make_stack()
