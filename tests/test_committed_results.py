"""The committed results (figures/*/numbers.json) are complete, self-consistent and current.

A reader of figures/REPORT.md trusts that every verdict comes from the engine that ships and that
every pass flag follows from the numbers beside it. These tests re-derive both from the files.
"""
import fnmatch
import json
import os

import pytest

from studies import _harness as h

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIG = os.path.join(ROOT, "figures")


def _load(study):
    p = os.path.join(FIG, study, "numbers.json")
    assert os.path.exists(p), f"{study}: no committed numbers.json (run: python -m studies run all)"
    with open(p) as f:
        return json.load(f)


@pytest.mark.parametrize("study", h.STUDIES)
def test_numbers_complete_and_consistent(study):
    n = _load(study)
    assert n["study"] == study and n["quick"] is False, f"{study}: committed results must be a full run"
    checked = [c for c in n["claims"] if c["passed"] is not None]
    assert checked, f"{study}: no check with a pass flag"
    for c in n["claims"]:
        key = c["key"]
        assert c["verdict"] in h.VERDICTS, f"{key}: verdict missing or unknown: {c['verdict']!r}"
        assert c.get("outcome") == h.outcome(c["verdict"], c["passed"]), f"{key}: outcome does not follow its flag"
        if c["passed"] is None:
            assert not c.get("criteria"), f"{key}: report-only row with criteria"
            continue
        crit = c.get("criteria")
        assert crit, f"{key}: a check with a pass flag must record its criteria"
        for x in crit:
            assert h.evaluate(x) == x["ok"], f"{key}: criterion {x['label']!r} recorded ok={x['ok']} but the " \
                                             f"recorded value {x['value']!r} {x['op']} {x['limit']!r} says otherwise"
        assert all(x["ok"] for x in crit) == c["passed"], f"{key}: pass flag contradicts its recorded criteria"
        if c["verdict"] == "refuted":
            assert c.get("basis") in h.BASES, f"{key}: a refutation without a CI or exact basis"


@pytest.mark.parametrize("study", h.STUDIES)
def test_every_check_bears_on_a_summary_row(study):
    pats = [p for _, _, ps, _ in h.SUMMARY for p in ps]
    for c in _load(study)["claims"]:
        if c["passed"] is not None:
            assert any(fnmatch.fnmatchcase(c["key"], p) for p in pats), \
                f"{c['key']}: not assigned to any paper claim in studies._harness.SUMMARY"


@pytest.mark.parametrize("study", h.STUDIES)
def test_results_come_from_the_shipped_engine(study):
    prov = _load(study)["provenance"]
    assert prov.get("dynclip_sources_sha1") == h.sources_sha1(), (
        f"{study}: numbers.json was produced by another version of dynclip/ than this checkout's; "
        "re-run: python -m studies run all")


def _report_files():
    return [os.path.join(FIG, "REPORT.md")] + [os.path.join(FIG, s, "REPORT.md") for s in h.STUDIES]


def test_report_is_current(tmp_path):
    """REPORT.md and the study pages are what `python -m studies report` writes from the committed numbers."""
    import shutil
    for s in h.STUDIES:
        shutil.copytree(os.path.join(FIG, s), tmp_path / s, ignore=shutil.ignore_patterns("REPORT.md", "*.npz"))
    h.write_report(str(tmp_path))
    for path in _report_files():
        with open(tmp_path / os.path.relpath(path, FIG)) as f:
            fresh = f.read()
        assert os.path.exists(path), f"{path} missing: python -m studies report"
        with open(path) as f:
            assert f.read() == fresh, f"{os.path.relpath(path, ROOT)} is stale: python -m studies report"


def test_verdict_rule():
    a = h.aggregate
    assert a(["confirmed", "confirmed"]) == "confirmed"
    assert a(["confirmed", "not supported"]) == "partially supported"
    assert a(["not supported", "report"]) == "not supported"
    assert a(["inconclusive"]) == "inconclusive"
    assert a(["refuted", "corrected", "not supported"]) == "refuted; corrected form holds"
    assert a(["refuted", "tool check failed"]) == "inconclusive"
    assert a(["corrected", "confirmed"]) == "corrected"
    assert a(["report"]) == "report only"
    # a missed threshold never refutes
    assert h.outcome("refuted", False) == "inconclusive" and h.outcome("confirmed", False) == "not supported"
    with pytest.raises(ValueError, match="basis"):
        h.claim("X.k", "s", 1, "t", criteria=[h.crit("x", 1, "<", 2)], verdict="refuted")
    with pytest.raises(ValueError, match="contradicts"):
        h.claim("X.k", "s", 1, "t", False, criteria=[h.crit("x", 1, "<", 2)], verdict="confirmed")


def test_criteria_evaluation():
    c = h.crit
    assert c("v", [1, 2], "<=", 2)["ok"] and not c("v", [], "<=", 2)["ok"]
    assert not c("v", "nan", "<", 1)["ok"] and not c("v", float("nan"), ">=", 0)["ok"]
    assert c("v", float("inf"), ">", 1e308)["ok"] and c("v", 0.5, "in", [0, 1])["ok"]
    assert not c("v", 1, "is", True)["ok"] and c("v", False, "is", False)["ok"]
    assert not c("v", True, ">=", 0)["ok"]          # a boolean is not a number here
    with pytest.raises(ValueError, match="op"):
        c("v", 1, "~", 1)


def _cells(line):
    """Cells of a Markdown table row: split on the pipes that are not escaped (as GFM tables do, code
    spans included)."""
    cells, cur, i = [], "", 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            cur += line[i:i + 2]
            i += 2
            continue
        if line[i] == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += line[i]
        i += 1
    cells.append(cur)
    return cells[1:-1] if line.strip().startswith("|") else cells


@pytest.mark.parametrize("path", _report_files(), ids=lambda p: os.path.relpath(p, FIG))
def test_report_renders_as_tables(path):
    """Every table of the report pages, as a CommonMark + table parser sees it, has as many cells in each
    row as in its header (an unescaped '|' in a value would shift the verdicts into the wrong column), and
    every local link and image points at a file."""
    markdown_it = pytest.importorskip("markdown_it")
    with open(path) as f:
        text = f.read()
    lines = text.splitlines()
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(text)
    tables = [t.map for t in tokens if t.type == "table_open"]
    assert tables, f"{path} has no table"
    n_rows = sum(1 for ln in lines if ln.startswith("|"))
    assert sum(b - a for a, b in tables) == n_rows, "a '|' line outside any parsed table"
    for a, b in tables:
        width = len(_cells(lines[a]))
        for ln in lines[a:b]:
            assert len(_cells(ln)) == width, f"row with {len(_cells(ln))} cells, header {width}: {ln[:120]}"
    targets = []
    for t in tokens:
        for ch in (t.children or []):
            if ch.type == "image":
                targets.append(ch.attrs["src"])
            elif ch.type == "link_open":
                targets.append(ch.attrs["href"])
    for tgt in targets:
        if "://" in tgt or tgt.startswith("#"):
            continue
        assert os.path.exists(os.path.join(os.path.dirname(path), tgt.split("#")[0])), f"{path}: broken link {tgt}"
