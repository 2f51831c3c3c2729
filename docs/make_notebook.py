"""Generate docs/tutorial.ipynb from docs/tutorial.md (the Markdown file is the source; never edit
the notebook by hand).

    python docs/make_notebook.py            # rewrite docs/tutorial.ipynb
    python docs/make_notebook.py --check    # exit 1 if the committed notebook is out of date

Prose becomes markdown cells (one or more per chapter), each ```python block a code cell. A ```text
block right after a python block is that block's printed output and is dropped (running the cell
prints it); any other ```text block (shell commands) stays in the prose. Image links to img/ are
dropped too: the notebook draws the figures inline. The notebook is written without outputs and
with fixed cell ids, so regenerating it gives the same file and git diffs stay small.
"""
import os
import re
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "tutorial.md")
TARGET = os.path.join(HERE, "tutorial.ipynb")

NOTE = ("*This notebook is generated from [tutorial.md](tutorial.md) by `docs/make_notebook.py`: "
        "edit the Markdown file and regenerate, not the notebook. Run the cells in order, from top to "
        "bottom. The figures appear below the cells that draw them and are also saved to `docs/img/`. "
        "Exercises: [exercises.md](exercises.md).*")
# Notebook only: inline figures (the tutorial's save() shows a figure when the backend is inline),
# and figures written next to the notebook, whatever the kernel's working folder.
SETUP = ('%matplotlib inline\n'
         'import os\n'
         'os.environ.setdefault("DYNCLIP_TUTORIAL_IMG", "img")   # this notebook lives in docs/')

_FENCE = re.compile(r"^```(\w*)\s*$")
_IMAGE = re.compile(r"^!\[[^\]]*\]\(img/[^)]*\)\s*$")


def _segments(text):
    """The Markdown as a list of (kind, text): kind "md", "python" or "text" (fenced blocks)."""
    segs, prose, lines = [], [], iter(text.splitlines())
    for line in lines:
        m = _FENCE.match(line)
        if not m:
            prose.append(line)
            continue
        lang, body = m.group(1), []
        for inner in lines:
            if inner.startswith("```"):
                break
            body.append(inner)
        else:
            raise ValueError(f"unclosed ``` block in {SOURCE}")
        segs.append(("md", "\n".join(prose)))
        prose = []
        segs.append(("python" if lang == "python" else "text", "\n".join(body), lang))
    segs.append(("md", "\n".join(prose)))
    return segs


def _markdown_cells(md):
    """Markdown cells from prose: image links to img/ dropped, a new cell at every ## heading."""
    cells, cur = [], []
    for line in md.splitlines():
        if _IMAGE.match(line):
            continue
        if line.startswith("## ") and cur:
            cells.append(cur)
            cur = []
        cur.append(line)
    cells.append(cur)
    return ["\n".join(c).strip("\n") for c in cells if "\n".join(c).strip()]


def build(text):
    """The notebook (nbformat v4, no outputs) for the Markdown ``text`` of the tutorial."""
    sources = [("markdown", NOTE), ("code", SETUP)]
    prev = None                               # kind of the last non-blank segment
    prose = []                                # markdown pending (merged across dropped blocks)
    for seg in _segments(text):
        kind, body = seg[0], seg[1]
        if kind == "md":
            if body.strip():
                prose.append(body)
                prev = "md"
            continue
        if kind == "text" and prev == "python":
            prev = "output"                   # printed output: running the cell prints it
            continue
        if kind == "text":
            prose.append(f"```{seg[2]}\n{body}\n```")
            prev = "md"
            continue
        sources += [("markdown", c) for c in _markdown_cells("\n".join(prose))]
        prose = []
        sources.append(("code", body.rstrip("\n")))
        prev = "python"
    sources += [("markdown", c) for c in _markdown_cells("\n".join(prose))]

    nb = new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    for i, (ctype, src) in enumerate(sources):
        cell = new_code_cell(src) if ctype == "code" else new_markdown_cell(src)
        cell["id"] = f"cell-{i:03d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(nb):
    return nbformat.writes(nb) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(SOURCE, encoding="utf-8") as f:
        new = render(build(f.read()))
    if "--check" in argv:
        with open(TARGET, encoding="utf-8") as f:
            if f.read() != new:
                print(f"{TARGET} is out of date: run python docs/make_notebook.py", file=sys.stderr)
                return 1
        return 0
    with open(TARGET, "w", encoding="utf-8") as f:
        f.write(new)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
