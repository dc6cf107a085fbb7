"""Shared test fixtures: where the read-only reference data lives."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """Path to a file under ../shared/data, skipping the test with a clear message if absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not found: {path} (expected ../shared/data beside the repo)")
    return path


@pytest.fixture
def walking_dir() -> Path:
    """OpenSim's example3DWalking folder (real trial, scaled model, reference ID)."""
    return shared_file("opensim-core", "example3DWalking")


@pytest.fixture
def c3d_dir() -> Path:
    """OpenSim's walking5.c3d and its own conversion of it."""
    return shared_file("opensim-core", "c3d")
