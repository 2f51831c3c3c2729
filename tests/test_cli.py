"""Every command the README documents is accepted as written; the real ones print verdicts and figures."""
import os
import re

import pytest

from dynclip import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _documented():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    cmds = []
    for block in re.findall(r"```text\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("dynclip "):
                cmds.append(line.split()[1:])
    return cmds


@pytest.mark.parametrize("argv", _documented(), ids=" ".join)
def test_documented_command_is_accepted(argv, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "_studies_main", lambda a: seen.append(("studies", a)) or 0)
    monkeypatch.setattr(cli, "_bench", lambda a: seen.append(("bench", a)) or 0)
    argv = [x for x in argv if not (x.startswith("[") and x.endswith("]"))]      # optional arguments shown as [DIR]
    assert cli.main(argv) == 0
    if argv[0] == "bench":
        assert seen == [("bench", argv[1:])]


def test_bad_usage_exits_2(capsys):
    assert cli.main(["run", "S2", "--bogus"]) == 2
    assert cli.main(["run", "S99"]) == 2
    assert cli.main([]) == 2


def test_run_prints_outcomes_and_figures(tmp_path, capsys):
    out = tmp_path / "s2"
    assert cli.main(["run", "S2", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "S2.paper_bound" in text and "refuted" in text
    assert str(out / "F2_azuma_constant.png") in text
    assert cli.main(["report", str(tmp_path)]) == 0        # a folder without study subfolders: empty report
    assert (tmp_path / "REPORT.md").exists()


def test_bench_quick_runs():
    pytest.importorskip("numba")
    assert cli.main(["bench", "--quick", "--only", "dynclip", "--no-save"]) == 0
