"""Every study runs in QUICK mode into a temporary folder and writes a well-formed numbers.json + figures;
its saved result loads back exactly and redraws with the same claims and figures."""
import importlib
import json
import os

import numpy as np
import pytest

from studies import _harness as h, _saved as saved

AVAILABLE = h.available()


@pytest.mark.parametrize("study", AVAILABLE)
def test_study_quick(study, tmp_path):
    n, res = h.run_study(study, quick=True, outdir=str(tmp_path), return_res=True)
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
    _check_saved_and_replot(study, n, res, tmp_path)


def _same(a, b, where="res"):
    """a == b exactly: the same types (tuple/list, numpy scalar/Python number), arrays equal in dtype,
    shape and values (nan where nan)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} saved, {type(b).__name__} loaded"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), f"{where}: values differ"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys differ"
        for k in a:
            _same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}/{i}")
    elif isinstance(a, (float, np.floating)) and np.isnan(a):
        assert np.isnan(b), f"{where}: nan saved, {b} loaded"
    else:
        assert a == b, f"{where}: {a!r} saved, {b!r} loaded"


def _check_saved_and_replot(study, n, res, tmp_path):
    """The quick run's saved res loads back exactly, its Config rebuilds from numbers.json, and the
    checks re-evaluated on the loaded res give the recorded claims (what `replot` does; the figures
    follow from an exact res: test_replot redraws one study through the command line)."""
    loaded = saved.load_res(str(tmp_path), run=h._run_label(n))
    _same(res, loaded)
    mod = importlib.import_module(f"studies.{study}")
    cfg = saved.config_from_json(mod.Config, n["config"])
    assert cfg == mod.QUICK
    assert json.loads(json.dumps(mod.check(loaded, cfg))) == json.loads(json.dumps(n["claims"]))


def test_replot(tmp_path, capsys):
    """quick run -> `replot` (no simulation): the same claims and figures, the run's provenance kept
    and the redraw recorded; a res.json from another run is refused."""
    from studies.__main__ import main
    n = h.run_study("S2", quick=True, outdir=str(tmp_path))
    for fig in n["figures"]:
        os.remove(tmp_path / fig)
    assert main(["replot", "S2", "--out", str(tmp_path)]) == 0
    assert "figures redrawn in" in capsys.readouterr().out
    with open(tmp_path / "numbers.json") as f:
        again = json.load(f)
    assert again["claims"] == json.loads(json.dumps(n["claims"]))
    assert again["figures"] == n["figures"] and all(os.path.getsize(tmp_path / fig) > 5000 for fig in n["figures"])
    assert again["provenance"].pop("redrawn")["date"]
    assert again["provenance"] == n["provenance"]
    again["provenance"]["date"] = "2000-01-01T00:00:00Z"        # numbers.json of another run
    with open(tmp_path / "numbers.json", "w") as f:
        json.dump(again, f)
    assert main(["replot", "S2", "--out", str(tmp_path)]) == 2
    assert "comes from run" in capsys.readouterr().err


def test_report_and_cli(tmp_path, capsys):
    from studies.__main__ import main
    assert main(["list"]) == 0
    assert main(["run", "S99"]) == 2
    path = h.write_report(str(tmp_path))
    assert "No study has been run yet" in open(path).read()


def test_replot_without_saved_data(tmp_path, capsys):
    """A folder without res.json/data.npz (e.g. results from before res.json existed) gives a clear
    error and exit code 2, not a traceback."""
    from studies.__main__ import main
    (tmp_path / "numbers.json").write_text(json.dumps({"study": "s05_ode_tracking"}))
    (tmp_path / "data.npz").write_bytes(b"")
    assert main(["replot", "S5", "--out", str(tmp_path)]) == 2
    assert f"no saved data in {tmp_path}: run `python -m studies run S5` first" in capsys.readouterr().err
    assert main(["replot", "S5", "--out", str(tmp_path / "missing")]) == 2


def test_saved_encoding(tmp_path):
    """What JSON cannot hold round-trips: non-finite floats, numpy scalars, tuples, non-string keys,
    arrays nested in dicts and lists; objects are refused with their place in res."""
    res = {"x": np.arange(3.0), "nested": {"two words, λ": {"err": np.array([np.nan, np.inf])}, "k": [np.ones(2)]},
           "nan": float("nan"), "inf": -np.inf, "f64": np.float64(0.1), "f32": np.float32(np.nan), "i": np.int64(7),
           "b": np.bool_(True), "t": (1, (2.5, "s")), "d": {1: "a", (2, 3): np.zeros(1)}, "m": {"__array__": 1},
           "none": None, "bool": False, "s": "text", "u8": np.arange(4, dtype=np.uint8)}
    saved.save_res(res, str(tmp_path))
    _same(res, saved.load_res(str(tmp_path)))
    with pytest.raises(TypeError, match="nested/obj: cannot save a value of type object"):
        saved.save_res({"nested": {"obj": object()}}, str(tmp_path))
    with pytest.raises(TypeError, match="a: cannot save an array of dtype object"):
        saved.save_res({"a": np.array([None])}, str(tmp_path))


def test_resolve():
    assert h.resolve("S5") == "s05_ode_tracking" == h.resolve("5")
    with pytest.raises(ValueError, match="unknown study"):
        h.resolve("S99")
