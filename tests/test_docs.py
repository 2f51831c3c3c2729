"""Every Python block of the README and the tutorial runs (docs cannot rot).

README blocks each run on their own (a reader pastes one block), and when a ```text block follows
a ```python block directly, it is what the block prints, checked to the character. Tutorial blocks
build on each other and run in order in one namespace, as in a reading session.
"""
import contextlib
import importlib.util
import io
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"```(\w+)\n(.*?)```", flags=re.S)


def _read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def _blocks(path):
    """[(python code, the text block that directly follows it or None)] in file order."""
    text = _read(path)
    fences = list(FENCE.finditer(text))
    out = []
    for i, m in enumerate(fences):
        if m.group(1) != "python":
            continue
        nxt = fences[i + 1] if i + 1 < len(fences) else None
        printed = (nxt.group(2) if nxt is not None and nxt.group(1) == "text"
                   and not text[m.end():nxt.start()].strip() else None)
        out.append((m.group(2), printed))
    return out


def _run(code, ns, path):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, path, "exec"), ns)
    return buf.getvalue()


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")


README_BLOCKS = _blocks("README.md")


@pytest.mark.parametrize("i", range(len(README_BLOCKS)))
def test_readme_block_runs_alone_and_prints_what_the_readme_shows(i, scratch):
    code, printed = README_BLOCKS[i]
    for mod in re.findall(r"^from (\w+)[\w.]* import|^import (\w+)", code, flags=re.M):
        name = mod[0] or mod[1]
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"needs the optional package {name}")
    out = _run(code, {"__name__": "__doc__"}, "README.md")
    if printed is not None:
        assert out == printed, f"README block {i} printed:\n{out}\nbut the README shows:\n{printed}"


def test_readme_has_examples():
    assert len(README_BLOCKS) >= 3 and sum(p is not None for _, p in README_BLOCKS) >= 3


def test_tutorial_code_runs(scratch):
    blocks = _blocks("docs/tutorial.md")
    assert blocks, "docs/tutorial.md has no python block"
    ns = {"__name__": "__doc__"}
    for code, _ in blocks:
        _run(code, ns, "docs/tutorial.md")
