"""Every command the README documents works as written; the library does not depend on its consumers.

The installed ``dynclip`` command has the library's commands (info, warmup); the studies and the
benchmark run from a clone (``python -m studies ...``, ``python -m benchmarks.run ...``), and the
old ``dynclip run/list/report/bench`` say so and exit 2.
"""
import glob
import os
import re

import pytest

from dynclip import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _documented(prefix):
    """The README's commands (in ```text blocks) that start with ``prefix``, as argv lists after it."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    cmds = []
    for block in re.findall(r"```text\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            if line.startswith(prefix + " "):
                argv = line[len(prefix):].split()
                cmds.append([x for x in argv if not (x.startswith("[") and x.endswith("]"))])  # [DIR]: optional
    return cmds


def test_readme_documents_each_kind_of_command():
    assert _documented("dynclip") and _documented("python -m studies") and _documented("python -m benchmarks.run")


@pytest.mark.parametrize("argv", _documented("dynclip"), ids=" ".join)
def test_documented_dynclip_command_runs(argv, capsys):
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert ("numba cache" in out) if argv == ["info"] else ("dynclip warmup: done" in out)


@pytest.mark.parametrize("argv", _documented("python -m studies"), ids=" ".join)
def test_documented_studies_command_is_accepted(argv, monkeypatch, tmp_path, capsys):
    from studies import __main__ as sm
    seen = []
    monkeypatch.setattr(sm.h, "run_study", lambda s, quick, outdir: seen.append(("run", s, quick)) or {})
    monkeypatch.setattr(sm.h, "replot_study", lambda s, outdir, quick: seen.append(("replot", s, quick)) or ({}, []))
    monkeypatch.setattr(sm.h, "summary_lines", lambda n, out: [])
    monkeypatch.setattr(sm.h, "write_report", lambda folder=None: seen.append(("report",)) or "REPORT.md")
    assert sm.main(argv) == 0
    if argv[0] == "run":
        assert seen[0] == ("run", sm.h.resolve(argv[1]) if argv[1] != "all" else sm.h.available()[0],
                           "--quick" in argv)
    if argv[0] == "list":
        assert len(capsys.readouterr().out.splitlines()) == len(sm.h.available())


@pytest.mark.parametrize("argv", _documented("python -m benchmarks.run"), ids=" ".join)
def test_documented_benchmark_command_runs(argv):
    pytest.importorskip("numba")
    from benchmarks.run import main
    assert main(argv + ["--only", "dynclip", "--no-save"]) == 0      # the peers need the [bench] extra


@pytest.mark.parametrize("argv, pointer", [(["run", "S3", "--quick"], "python -m studies run S3 --quick"),
                                           (["list"], "python -m studies list"),
                                           (["report"], "python -m studies report"),
                                           (["bench", "--quick"], "python -m benchmarks.run --quick")])
def test_moved_command_points_to_the_clone(argv, pointer, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.endswith(pointer + "\n") and len(err.splitlines()) == 1


def test_bad_usage_exits_2():
    assert cli.main(["info", "--bogus"]) == 2
    assert cli.main(["bogus"]) == 2
    assert cli.main([]) == 2
    from studies.__main__ import main
    assert main(["run", "S99"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["run", "S2", "--bogus"])
    assert e.value.code == 2


def test_study_run_prints_outcomes_and_figures(tmp_path, capsys):
    from studies.__main__ import main
    out = tmp_path / "s2"
    assert main(["run", "S2", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "S2.paper_bound" in text and "refuted" in text
    assert str(out / "F2_azuma_constant.png") in text
    assert main(["report", str(tmp_path)]) == 0        # a folder without study subfolders: empty report
    assert (tmp_path / "REPORT.md").exists()


def test_library_does_not_depend_on_its_consumers():
    """The wheel holds the package dynclip only, and nothing in it imports the studies or the benchmarks
    or edits sys.path to find them."""
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        assert re.findall(r"^packages\s*=\s*(.*)$", f.read(), flags=re.M) == ['["dynclip"]']
    bad = re.compile(r"^\s*(from|import)\s+(studies|benchmarks)\b|sys\.path", flags=re.M)
    for path in glob.glob(os.path.join(ROOT, "dynclip", "**", "*.py"), recursive=True):
        with open(path) as f:
            assert not bad.search(f.read()), f"{os.path.relpath(path, ROOT)} reaches outside the library"
