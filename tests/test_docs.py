"""Every Python block of the README, the tutorial and the exercises runs (docs cannot rot)."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [p for p in ("README.md", "docs/tutorial.md", "docs/exercises.md") if os.path.exists(os.path.join(ROOT, p))]


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


def _read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def _flat(text):
    return " ".join(text.split())


def test_exercises_match_the_tutorial():
    """The statements at the end of each tutorial chapter are those answered in docs/exercises.md."""
    tut, ex = _read("docs/tutorial.md"), _read("docs/exercises.md")
    items = re.findall(r"^\* \*\*(\d\.\d)\*\* (.*?)(?=\n\* \*\*|\n\n)", tut, flags=re.M | re.S)
    answered = re.findall(r"^\*\*(\d\.\d)\*\* (.*?)\n\n<details><summary>Solution</summary>", ex,
                          flags=re.M | re.S)
    assert len(items) >= 10 and [k for k, _ in items] == [k for k, _ in answered]
    for (key, a), (_, b) in zip(items, answered):
        assert _flat(a) == _flat(b), f"exercise {key} differs between the tutorial and exercises.md"
    n_solutions = len(re.findall(r"<details><summary>Solution</summary>.*?```python\n", ex, flags=re.S))
    assert n_solutions == len(answered), "every exercise has a solution with code"
