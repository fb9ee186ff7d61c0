"""The bundled sample is the shared snow_rte dataset byte for byte (tests on one test the other)."""

from __future__ import annotations

from pathlib import Path

import pytest

from veritag.quickstart import sample_dir

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "crowd" / "snow_rte"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside this clone")
@pytest.mark.parametrize("name", ["texts.csv", "labels.csv", "gt.csv"])
def test_bundled_sample_matches_shared_data(name: str) -> None:
    assert (sample_dir() / name).read_bytes() == (SHARED / name).read_bytes()


def test_bundled_sample_sizes() -> None:
    lines = {
        name: (sample_dir() / name).read_text(encoding="utf-8").count("\n")
        for name in ("labels.csv", "gt.csv")
    }
    assert lines == {"labels.csv": 8001, "gt.csv": 801}
