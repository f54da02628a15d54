"""Fixtures shared by the unit tests."""

import pytest


@pytest.fixture
def learner(monkeypatch):
    """A learner's run of a notebook: nbgrader is not grading it."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)


@pytest.fixture
def graded(monkeypatch):
    """A run under nbgrader's autograde (it sets NBGRADER_EXECUTION)."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
