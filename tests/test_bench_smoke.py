"""The benchmark runs (dynclip only, tiny T) and dynclip agrees with a plain NumPy loop on its task."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_benchmark_smoke():
    sys.path.insert(0, ROOT)
    try:
        from benchmarks.run import smoke
    finally:
        sys.path.remove(ROOT)
    res = smoke(T=50)
    assert res["verification"] and all(v["pass"] for v in res["verification"]), res["verification"]


def test_profile_smoke():
    """benchmarks.profile times every part of a step: all parts present, none negative, and the glue
    is what the parts leave of the whole step."""
    sys.path.insert(0, ROOT)
    try:
        from benchmarks import profile
    finally:
        sys.path.remove(ROOT)
    rows, whole = profile.profile(B=2, steps=200, rounds=1)
    assert {name for name, _, _ in rows} == set(profile.PARTS)
    assert whole > 0 and all(t >= 0 for _, _, t in rows)      # (a tiny part may round to 0)
    text = profile.table(2, rows, whole)
    assert "engine glue" in text and text.count("\n| ") == len(rows) + 2
