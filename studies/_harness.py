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


#: the paper claims the report summarises first: (claim, what the paper says, the checks that
#: test it as "study key" pairs; the first key's measured value is shown)
SUMMARY = [
    ("Lemma 1, eqs. (12)-(13)", "no finite-time blow-up with very high probability",
     ["S1.sure_bound", "S1.iii_attained", "S3.sure_bound"]),
    ("Lemma 1: M_s is a supermartingale", "the sum of clipped step lengths is a supermartingale",
     ["S1.submartingale"]),
    ("eqs. (14)-(16)", "Hoeffding-Azuma: P(|M_s - M_0| > rho) <= 2 exp(-2 rho^2 / (lam^2 sum a^2))",
     ["S2.paper_bound", "S1.i_eq15", "S2.correct_bound", "S2.plugin_exponents", "S3.clipped_xi_valid_bounds"]),
    ("Claim 2, eq. (19)", "||g/c|| <= K (1 + ||theta||); clipped adaptive steps have norm lam ||theta||",
     ["S8.claim2", "S8.radial_identity", "S9.radial_identity"]),
    ("Lemma 3", "the noise sum xi converges (w.h.p.)", ["S4.orthogonality", "S4.osc_slopes", "S4.L2_bound"]),
    ("Theorem 1 (mechanism)", "clipped SGD tracks the ODE theta' = -H(theta)",
     ["S5.D_slope", "S5.D_decreasing", "S5.D_ratio"]),
    ("Theorem 1: limit is an equilibrium / local minimum", "theta(inf) is a zero of H and in most cases a "
     "local minimum of the loss", ["S7.i.curl", "S7.iii.F_increases", "S1.iv_escape"]),
    ("Theorem 1, closing remark", "E[g/c] = 0 implies E[g] = 0 since c > 0",
     ["S6.i.Eg", "S6.iii.bias", "S6.iii.full_batch"]),
    ("(A3)", "adaptive clipping is numerically stable with very high probability",
     ["S8.adaptive_diverges", "S9.diverges_large_step", "S9.crossing"]),
    ("Abstract/intro: vanishing gradients", "clipping helps vanishing gradients; small weights get larger steps",
     []),
    ("Zhang et al.: clipping accelerates", "clipped GD needs iterations independent of M; fixed-step GD ~ M",
     ["S10.cosh_ratio_x0_12", "S10.cosh_gd_slope", "S10.cosh_clip_slope", "S11.B_speedup"]),
    ("Zhang et al. Fig. 1", "local smoothness grows with the gradient norm",
     ["S11.A_quartic_clip", "S11.A_mse_gd", "S11.A_minibatch_contrast"]),
    ("Ede & Beanland, Table 1", "ALRC helps quartic small-batch training, neutral for squared errors",
     ["S12.quartic_B1_size", "S12.quartic_small_batch", "S12.squared_neutral", "S12.code_variant"]),
]
_NO_STUDY = {"Abstract/intro: vanishing gradients": (
    "refuted (algebra)", "c >= 1 for every rule of the paper, so no gradient is ever enlarged; "
    "tests/test_clipping.py checks c >= 1 and ||g/c|| <= ||g|| on every tested vector")}


def _summary(rows):
    by_key = {c["key"]: (n, c) for n in rows for c in n["claims"]}
    out = ["## Verdicts by paper claim", "",
           "| paper claim | the paper says | verdict | checks (pass) | headline measurement |",
           "|---|---|---|---|---|"]
    for name, says, keys in SUMMARY:
        if name in _NO_STUDY:
            v, m = _NO_STUDY[name]
            out.append(f"| {name} | {says} | {v} | – | {m} |")
            continue
        found = [by_key[k] for k in keys if k in by_key]
        if not found:
            out.append(f"| {name} | {says} | not run | – | – |")
            continue
        verdict = found[0][1]["verdict"] or "report"       # the headline check's verdict
        others = [c["verdict"] for _, c in found[1:] if c["verdict"] not in (None, "report", verdict)]
        if others:
            verdict += " (mixed: " + ", ".join(f"{others.count(v)} {v}" for v in sorted(set(others))) + ")"
        checks = ", ".join(f"[{c['key']}]({n['study']}/)"
                           f"{'' if c['passed'] is None else (' ✓' if c['passed'] else ' ✗')}" for n, c in found)
        head = found[0][1]
        m = _fmt(head["measured"])
        out.append(f"| {name} | {says} | **{verdict}** | {checks} | {m[:200] + ('…' if len(m) > 200 else '')} |")
    return out + [""]


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
    else:
        lines += _summary(rows)
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
