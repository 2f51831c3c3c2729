"""Every study runs in QUICK mode into a temporary folder and writes a well-formed numbers.json + figures."""
import json
import os

import pytest

from studies import _harness as h

AVAILABLE = h.available()


@pytest.mark.parametrize("study", AVAILABLE)
def test_study_quick(study, tmp_path):
    n = h.run_study(study, quick=True, outdir=str(tmp_path))
    with open(tmp_path / "numbers.json") as f:
        on_disk = json.load(f)
    assert on_disk == json.loads(json.dumps(n))
    assert set(n) >= {"study", "title", "paper_claims", "quick", "config", "claims", "figures", "provenance"}
    assert n["quick"] is True and n["claims"], "a study must check at least one claim"
    for c in n["claims"]:
        assert set(c) >= {"key", "statement", "measured", "threshold", "passed", "paper", "verdict"}
        assert c["passed"] in (True, False, None)
        assert c["verdict"] in h.VERDICTS + (None,)
    assert n["figures"], "a study must write at least one figure"
    for fig in n["figures"]:
        assert os.path.getsize(tmp_path / fig) > 5000
        assert os.path.exists(tmp_path / fig.replace(".png", ".pdf"))
    assert n["provenance"]["wall_time_s"] >= 0 and n["provenance"]["numba"]


def test_report_and_cli(tmp_path, capsys):
    from studies.__main__ import main
    assert main(["list"]) == 0
    assert main(["run", "S99"]) == 2
    path = h.write_report(str(tmp_path))
    assert "No study has been run yet" in open(path).read()


def test_resolve():
    assert h.resolve("S5") == "s05_ode_tracking" == h.resolve("5")
    with pytest.raises(ValueError, match="unknown study"):
        h.resolve("S99")
