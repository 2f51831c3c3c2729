"""docs/tutorial.ipynb is docs/tutorial.md as a notebook: it does not drift, and it runs."""
import importlib.util
import os

import nbclient      # the test extra installs nbformat, nbclient and ipykernel: a missing one fails
import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
NOTEBOOK = os.path.join(DOCS, "tutorial.ipynb")


def _maker():
    spec = importlib.util.spec_from_file_location("make_notebook", os.path.join(DOCS, "make_notebook.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cells(nb):
    return [(c.cell_type, c.source) for c in nb.cells]


def test_notebook_is_generated_from_the_tutorial():
    mk = _maker()
    with open(mk.SOURCE, encoding="utf-8") as f:
        fresh = mk.build(f.read())
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert _cells(committed) == _cells(fresh), \
        "docs/tutorial.ipynb is out of date with docs/tutorial.md: run python docs/make_notebook.py"
    # every python block of the tutorial is a code cell, in order; outputs are not committed
    with open(mk.SOURCE, encoding="utf-8") as f:
        blocks = [s[1].rstrip("\n") for s in mk._segments(f.read()) if s[0] == "python"]
    code = [src for kind, src in _cells(committed) if kind == "code"]
    assert code[1:] == blocks and code[0] == mk.SETUP
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code")


def test_generator_drops_outputs_keeps_shell_blocks():
    mk = _maker()
    md = ("# T\n\nintro\n\n## 1. A\n\n```python\nprint(1)\n```\n\n```text\n1\n```\n\n"
          "![fig](img/a.png)\n\nafter\n\n## 2. B\n\n```text\ndynclip info\n```\n")
    cells = _cells(mk.build(md))
    assert cells[2:] == [("markdown", "# T\n\nintro"), ("markdown", "## 1. A"), ("code", "print(1)"),
                         ("markdown", "after"), ("markdown", "## 2. B\n\n```text\ndynclip info\n```")]


def test_notebook_executes(tmp_path, monkeypatch):
    """Runs the whole tour in a fresh kernel (about a minute with the Numba cache warm; the
    tutorial test before it fills the cache) and checks that every figure is drawn inline."""
    monkeypatch.setenv("DYNCLIP_TUTORIAL_IMG", str(tmp_path / "img"))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # "python3" is the kernel that ipykernel provides in every environment where it is installed
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=900,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    n_saved = sum(src.count("save(fig, \"") for kind, src in _cells(nb) if kind == "code")
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert n_saved == 5 and len(images) == n_saved
    assert sorted(os.listdir(tmp_path / "img")) == ["01_clipped_sgd.png", "02_mean_field.png", "03_ode_tracking.png",
                                                    "04_noise_bounds.png", "05_clipping_bias.png"]
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "clipped steps:" in printed and "zero of H: theta_c = 0.111111" in printed
