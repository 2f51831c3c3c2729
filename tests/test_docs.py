"""Every Python block of the README and the tutorial runs (docs cannot rot)."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [p for p in ("README.md", "docs/tutorial.md") if os.path.exists(os.path.join(ROOT, p))]


def _blocks(path):
    with open(os.path.join(ROOT, path)) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.parametrize("path", DOCS)
def test_doc_code_runs(path, tmp_path, monkeypatch):
    blocks = _blocks(path)
    assert blocks, f"{path} has no python block"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ns = {"__name__": "__doc__"}
    for code in blocks:            # blocks share one namespace, as in a reading session
        exec(compile(code, path, "exec"), ns)
