"""Study harness: run a study module, check its claims, plot, and write numbers.json.

A study module defines ``TITLE``, ``PAPER_CLAIMS`` (the paper claims it tests), a frozen
dataclass ``Config`` (seed included), ``QUICK`` (a small Config for tests), and
``run(cfg) -> dict``, ``check(res, cfg) -> list of claim dicts`` (built with :func:`claim`),
``plot(res, cfg, outdir) -> None``.
"""
import dataclasses
import importlib
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

STUDIES = ["s01_sure_bound", "s02_azuma", "s03_blowup", "s04_martingale", "s05_ode_tracking", "s06_bias",
           "s07_not_gradient", "s08_adaptive_1d", "s09_adaptive_mlp", "s10_zhang_1d", "s11_zhang_mlp",
           "s12_alrc"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# figures/ of the repository for a clone (editable install); ./figures otherwise
FIGURES = os.environ.get("DYNCLIP_FIGURES") or (
    os.path.join(ROOT, "figures") if os.path.exists(os.path.join(ROOT, "pyproject.toml"))
    else os.path.join(os.getcwd(), "figures"))
VERDICTS = ("confirmed", "refuted", "corrected", "report")


def claim(key, statement, measured, threshold, passed, *, paper=None, verdict=None, note=""):
    """One checked claim.

    key : short id ("S1.sure_bound"); statement : what is tested, in words;
    measured : the measured value(s) (JSON-able); threshold : the pass criterion, in words or numbers;
    passed : the study's pass criterion met (None for report-only rows);
    paper : the paper's claim this bears on ("Lemma 1", "eq. (15)", ...);
    verdict : what the result says about that paper claim: confirmed / refuted / corrected / report.
    """
    if verdict is not None and verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}; got {verdict!r}")
    return dict(key=key, statement=statement, measured=_jsonable(measured), threshold=_jsonable(threshold),
                passed=None if passed is None else bool(passed), paper=paper, verdict=verdict, note=note)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if np.isfinite(v) else str(v)
    return v


def resolve(name):
    """Module name for 'S5', 's5', '5' or 's05_ode_tracking'."""
    n = name.lower().lstrip("s")
    for s in STUDIES:
        if s == name or (n.isdigit() and int(n) == int(s[1:3])):
            return s
    raise ValueError(f"unknown study {name!r}; choose from " + ", ".join(f"S{int(s[1:3])}" for s in STUDIES))


def available():
    out = []
    for s in STUDIES:
        try:
            importlib.import_module(f"studies.{s}")
            out.append(s)
        except ModuleNotFoundError as e:
            if e.name != f"studies.{s}":
                raise
    return out


def provenance(wall):
    import numba
    import scipy
    import dynclip
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return dict(commit=commit, dynclip=dynclip.__version__, numpy=np.__version__, scipy=scipy.__version__,
                numba=numba.__version__, python=platform.python_version(), threads=numba.get_num_threads(),
                machine=platform.machine(), wall_time_s=round(wall, 2),
                date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def run_study(name, quick=False, outdir=None):
    """Run one study; returns the numbers.json content."""
    modname = resolve(name)
    mod = importlib.import_module(f"studies.{modname}")
    cfg = mod.QUICK if quick else mod.Config()
    outdir = outdir or os.path.join(FIGURES, modname)
    os.makedirs(outdir, exist_ok=True)
    t0 = time.perf_counter()
    res = mod.run(cfg)
    claims = mod.check(res, cfg)
    mod.plot(res, cfg, outdir)
    wall = time.perf_counter() - t0
    numbers = dict(study=modname, title=mod.TITLE, paper_claims=list(mod.PAPER_CLAIMS), quick=bool(quick),
                   config=_jsonable(dataclasses.asdict(cfg)), claims=claims,
                   figures=sorted(f for f in os.listdir(outdir) if f.endswith(".png")),
                   provenance=provenance(wall))
    with open(os.path.join(outdir, "numbers.json"), "w") as f:
        json.dump(numbers, f, indent=1)
    arrays = {k: v for k, v in res.items() if isinstance(v, np.ndarray) and v.dtype != object}
    if arrays:
        np.savez_compressed(os.path.join(outdir, "data.npz"), **arrays)
    return numbers


def summary_line(numbers):
    c = numbers["claims"]
    npass = sum(1 for x in c if x["passed"] is True)
    nfail = sum(1 for x in c if x["passed"] is False)
    return (f"{numbers['study']}: {npass} passed, {nfail} failed, {len(c) - npass - nfail} report-only "
            f"({numbers['provenance']['wall_time_s']} s)")


def write_report(figdir=FIGURES):
    """figures/REPORT.md: one row per checked claim, grouped by the paper claim it tests."""
    rows = []
    for s in STUDIES:
        p = os.path.join(figdir, s, "numbers.json")
        if os.path.exists(p):
            with open(p) as f:
                rows.append(json.load(f))
    lines = ["# dynclip report: the seed papers' claims, tested", "",
             "Generated by `python -m studies report` from `figures/*/numbers.json`. Each row is one check of "
             "one study: the paper's claim it bears on, what was measured, the pass criterion, and the verdict "
             "on the paper's claim (confirmed / refuted / corrected / report = shown without a verdict).", ""]
    if not rows:
        lines.append("No study has been run yet: `python -m studies run all`.")
    for n in rows:
        mode = " (QUICK mode: small sizes, not the committed full run)" if n["quick"] else ""
        lines += [f"## {n['study']}: {n['title']}{mode}", "",
                  "Figures: " + ", ".join(f"[{fig}]({n['study']}/{fig})" for fig in n["figures"]), "",
                  "| paper claim | check | measured | criterion | pass | verdict |", "|---|---|---|---|---|---|"]
        for c in n["claims"]:
            ok = {True: "yes", False: "**no**", None: "–"}[c["passed"]]
            lines.append(f"| {c['paper'] or ''} | {c['statement']} | {_fmt(c['measured'])} | {_fmt(c['threshold'])} "
                         f"| {ok} | {c['verdict'] or ''} |")
            if c.get("note"):
                lines.append(f"| | *note:* {c['note']} | | | | |")
        lines += ["", f"Run: {n['provenance']['wall_time_s']} s, commit {n['provenance']['commit']}, "
                      f"{n['provenance']['threads']} threads.", ""]
    with open(os.path.join(figdir, "REPORT.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return os.path.join(figdir, "REPORT.md")


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v[:12]) + (", …" if len(v) > 12 else "") + "]"
    return str(v).replace("|", "\\|")
