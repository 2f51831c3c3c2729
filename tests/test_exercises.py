"""docs/exercises.md: every solution runs (in order, in one namespace, as in a class session) and
prints what the file shows under it; the exercises are those stated at the end of each tutorial
chapter."""
import contextlib
import io
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXERCISES = "docs/exercises.md"


def _read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def _flat(text):
    return " ".join(text.split())


def test_exercise_solutions_run_and_print_what_is_shown(tmp_path, monkeypatch):
    text = _read(EXERCISES)
    # a python block, and the ```text block directly after it (what it prints), if any
    pairs = re.findall(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```\n)?", text, flags=re.S)
    assert len(pairs) >= 10 and sum(bool(p) for _, p in pairs) >= 10
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ns = {"__name__": "__doc__"}
    for i, (code, printed) in enumerate(pairs):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, EXERCISES, "exec"), ns)
        if printed:
            assert buf.getvalue() == printed, \
                f"{EXERCISES} block {i} printed:\n{buf.getvalue()}\nbut the file shows:\n{printed}"


def test_exercises_match_the_tutorial():
    """The statements at the end of each tutorial chapter are the ones answered in exercises.md."""
    tut, ex = _read("docs/tutorial.md"), _read(EXERCISES)
    items = re.findall(r"^\* \*\*(\d\.\d)\*\* (.*?)(?=\n\* \*\*|\n\n)", tut, flags=re.M | re.S)
    answered = re.findall(r"^\*\*(\d\.\d)\*\* (.*?)\n\n<details><summary>Solution</summary>", ex,
                          flags=re.M | re.S)
    assert len(items) >= 10 and [k for k, _ in items] == [k for k, _ in answered]
    for (key, a), (_, b) in zip(items, answered):
        assert _flat(a) == _flat(b), f"exercise {key} differs between the tutorial and exercises.md"
    n_solutions = len(re.findall(r"<details><summary>Solution</summary>.*?```python\n", ex, flags=re.S))
    assert n_solutions == len(answered), "every exercise has a solution with code"
