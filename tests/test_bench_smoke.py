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
