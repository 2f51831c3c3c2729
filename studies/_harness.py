"""Study harness: run a study module, check its claims, plot, and write numbers.json.

A study module defines ``TITLE``, ``PAPER_CLAIMS`` (the paper claims it tests), a frozen
dataclass ``Config`` (seed included), ``QUICK`` (a small Config for tests), and
``run(cfg) -> dict``, ``check(res, cfg) -> list of claim dicts`` (built with :func:`claim`); its
figures come from ``studies/plots/<study>.py``: ``plot(res, cfg, outdir) -> None``. A run saves
``res`` (studies/_saved.py: res.json + data.npz) so that :func:`replot_study` can redraw the
figures and re-evaluate the checks without simulating again.
"""
import dataclasses
import importlib
import json
import os
import platform
import subprocess
import time

import numpy as np

from studies import _saved as saved

STUDIES = ["s01_sure_bound", "s02_azuma", "s03_blowup", "s04_martingale", "s05_ode_tracking", "s06_bias",
           "s07_not_gradient", "s08_adaptive_1d", "s09_adaptive_mlp", "s10_zhang_1d", "s11_zhang_mlp",
           "s12_alrc", "s13_rare", "s14_fluctuations"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# figures/ of the repository for a clone (editable install); ./figures otherwise
FIGURES = os.environ.get("DYNCLIP_FIGURES") or (
    os.path.join(ROOT, "figures") if os.path.exists(os.path.join(ROOT, "pyproject.toml"))
    else os.path.join(os.getcwd(), "figures"))
#: quick runs (small sizes) go here by default, never over the committed full results
QUICK_FIGURES = os.path.join(FIGURES, "quick")
VERDICTS = ("confirmed", "refuted", "corrected", "report")
#: what a refutation rests on: a Monte-Carlo estimate with a confidence interval, or an exact
#: (deterministic, analytic or roundoff-limited) computation
BASES = ("ci", "exact")
OPS = ("<=", "<", ">=", ">", "==", "!=", "in", "is")


def crit(label, value, op, limit=True):
    """One machine-checkable comparison of a check: ``value op limit``.

    value : a number, bool, or a list of them (then every element must satisfy the comparison;
    an empty list fails); op : one of OPS ("in" takes ``limit = [lo, hi]``, closed; "is" compares
    booleans); limit : the threshold. Stored in numbers.json, so the pass flag of every check can be
    re-derived from the recorded numbers alone (``tests/test_committed_results.py`` does).
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}; got {op!r}")
    c = dict(label=str(label), value=_jsonable(value), op=op, limit=_jsonable(limit))
    c["ok"] = evaluate(c)
    return c


def _num(x):
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):
        return float(x)
    return x


def evaluate(c):
    """Re-evaluate one stored comparison (from crit or read back from numbers.json)."""
    vals = c["value"] if isinstance(c["value"], list) else [c["value"]]
    op, lim = c["op"], c["limit"]
    if not vals:
        return False
    for v in vals:
        v = _num(v)
        if op == "is":
            ok = isinstance(v, bool) and v is bool(lim)
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        elif op == "in":
            lo, hi = (_num(x) for x in lim)
            ok = lo <= v <= hi
        else:
            lim_ = _num(lim)
            ok = {"<=": v <= lim_, "<": v < lim_, ">=": v >= lim_, ">": v > lim_, "==": v == lim_,
                  "!=": v != lim_}[op]
        if not ok:
            return False
    return True


def claim(key, statement, measured, threshold, passed=None, *, criteria=None, paper=None, verdict=None,
          basis=None, note=""):
    """One checked claim.

    key : short id ("S1.sure_bound"); statement : what is tested, in words;
    measured : the measured value(s) (JSON-able); threshold : the pass criterion, in words;
    criteria : list of :func:`crit` comparisons; the check passes iff all hold (None, with
    passed None, for a report-only row);
    passed : optional; if given with criteria it must agree with them (a study bug otherwise);
    paper : the paper's claim this bears on ("Lemma 1", "eq. (15)", ...);
    verdict : what a *pass* says about that paper claim, fixed before the run: confirmed /
    refuted / corrected, or report for a check of the tool itself (a simulation cross-check);
    basis : for verdict="refuted", how the refutation is established: "ci" (a confidence
    interval excludes the claim) or "exact".
    A failed check never refutes: see :func:`outcome`.
    """
    if verdict is not None and verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}; got {verdict!r}")
    if criteria is not None:
        criteria = list(criteria)
        if not criteria:
            raise ValueError(f"{key}: criteria must hold at least one comparison")
        ok = all(c["ok"] for c in criteria)
        if passed is not None and bool(passed) != ok:
            raise ValueError(f"{key}: passed={passed} contradicts its criteria ({ok})")
        passed = ok
    if passed is not None and verdict is None:
        raise ValueError(f"{key}: a check with a pass flag needs a verdict (what a pass means)")
    if verdict == "refuted" and basis not in BASES:
        raise ValueError(f"{key}: a refutation needs basis in {BASES} (a confidence interval or an exact "
                         f"computation); got {basis!r}")
    return dict(key=key, statement=statement, measured=_jsonable(measured), threshold=_jsonable(threshold),
                passed=None if passed is None else bool(passed), criteria=criteria, paper=paper,
                verdict=verdict, basis=basis, outcome=outcome(verdict, passed), note=note)


#: what one check says, from its verdict (what a pass means) and its pass flag
OUTCOMES = ("confirmed", "corrected", "refuted", "not supported", "inconclusive", "tool check passed",
            "tool check failed", "report")


def outcome(verdict, passed):
    """A check's outcome. A pass gives its verdict; a missed threshold is "not supported" (a
    confirming check) or "inconclusive" (a refutation that was not established), never "refuted"."""
    if passed is None:
        return "report"
    if verdict in (None, "report"):
        return "tool check passed" if passed else "tool check failed"
    if passed:
        return verdict
    return "inconclusive" if verdict == "refuted" else "not supported"


VERDICT_RULE = (
    "A paper claim's verdict is computed from the outcomes of all checks assigned to it. Each check fixes "
    "before the run what a pass means (confirmed, corrected, or refuted; a refutation must rest on a "
    "confidence interval or an exact computation). A missed threshold never refutes: it makes the check "
    "'not supported' (or 'inconclusive' for a refutation that was not established). Then, in order: "
    "a failed check of the tool itself (a simulation cross-check) makes the claim **inconclusive**; "
    "any established refutation makes it **refuted** (\"refuted; corrected form holds\" if a corrected "
    "statement passed too); failed and passed supporting checks together make it **partially supported**; "
    "only failed ones **not supported** (or **inconclusive**); otherwise **corrected** if a corrected "
    "statement holds, **confirmed** if every check confirms it.")


def aggregate(outcomes):
    """The verdict on one paper claim from its checks' outcomes (rule: VERDICT_RULE)."""
    o = list(outcomes)
    if "tool check failed" in o:
        return "inconclusive"
    if "refuted" in o:
        return "refuted; corrected form holds" if "corrected" in o else "refuted"
    good = "confirmed" in o or "corrected" in o
    if "not supported" in o or "inconclusive" in o:
        if good:
            return "partially supported"
        return "not supported" if "not supported" in o else "inconclusive"
    if "corrected" in o:
        return "corrected"
    if "confirmed" in o:
        return "confirmed"
    return "report only"


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


def sources_sha1():
    """SHA-1 over the engine's source files (dynclip/*.py, sorted by name): the committed numbers must
    come from the engine that ships (tests/test_committed_results.py compares it)."""
    import hashlib
    import dynclip
    h = hashlib.sha1()
    d = os.path.dirname(os.path.abspath(dynclip.__file__))
    for name in sorted(f for f in os.listdir(d) if f.endswith(".py")):
        with open(os.path.join(d, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()


def provenance(wall):
    import numba
    import scipy
    import dynclip
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return dict(commit=commit, dynclip_sources_sha1=sources_sha1(), dynclip=dynclip.__version__, numpy=np.__version__, scipy=scipy.__version__,
                numba=numba.__version__, python=platform.python_version(), threads=numba.get_num_threads(),
                machine=platform.machine(), wall_time_s=round(wall, 2),
                date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _quick_stamp(mod):
    """'QUICK run (R = 200, n_steps = 500, ...)': the sizes that differ from the full run."""
    full, quick = dataclasses.asdict(mod.Config()), dataclasses.asdict(mod.QUICK)
    diff = [f"{k} = {quick[k]}" for k in quick if quick[k] != full.get(k) and not isinstance(quick[k], (tuple, list))]
    return "QUICK run, not the committed results" + (f" ({', '.join(diff[:3])})" if diff else "")


def _plot(modname, res, cfg, outdir, quick):
    from dynclip import plotting
    mod = importlib.import_module(f"studies.{modname}")
    plotting.STAMP = _quick_stamp(mod) if quick else None
    try:
        importlib.import_module(f"studies.plots.{modname}").plot(res, cfg, outdir)
    finally:
        plotting.STAMP = None
    return sorted(f for f in os.listdir(outdir) if f.endswith(".png"))


def run_study(name, quick=False, outdir=None, return_res=False):
    """Run one study into ``outdir`` (default figures/<study>, or figures/quick/<study> for a quick
    run); returns the numbers.json content (and ``res`` with ``return_res=True``). Writes
    numbers.json, the figures, and ``res`` (res.json + data.npz) for :func:`replot_study`."""
    from dynclip._jit import announce_compile
    announce_compile("dynclip studies")
    modname = resolve(name)
    mod = importlib.import_module(f"studies.{modname}")
    cfg = mod.QUICK if quick else mod.Config()
    outdir = outdir or os.path.join(QUICK_FIGURES if quick else FIGURES, modname)
    os.makedirs(outdir, exist_ok=True)
    t0 = time.perf_counter()
    res = mod.run(cfg)
    claims = mod.check(res, cfg)
    figures = _plot(modname, res, cfg, outdir, quick)
    wall = time.perf_counter() - t0
    numbers = dict(study=modname, title=mod.TITLE, paper_claims=list(mod.PAPER_CLAIMS), quick=bool(quick),
                   config=_jsonable(dataclasses.asdict(cfg)), claims=claims, figures=figures,
                   provenance=provenance(wall))
    saved.save_res(res, outdir, run=_run_label(numbers))
    with open(os.path.join(outdir, "numbers.json"), "w") as f:
        json.dump(numbers, f, indent=1)
    return (numbers, res) if return_res else numbers


def _run_label(numbers):
    """What ties a saved res to its numbers.json: the study and the run's date."""
    return {"study": numbers["study"], "date": numbers["provenance"]["date"]}


class NoSavedData(FileNotFoundError):
    """replot_study: the folder holds no saved res (res.json + data.npz) of the study's run."""


def replot_study(name, outdir=None, quick=False):
    """Redraw a study's figures from the data a run saved in ``outdir`` (default figures/<study>, or
    figures/quick/<study>): rebuild its Config from numbers.json, load ``res``, re-run ``check`` and
    the plot module (no simulation), rewrite the figures and numbers.json. The provenance stays the
    run's (the numbers come from it); ``provenance["redrawn"]`` says when and from which commit the
    figures were redrawn. Returns ``(numbers, changed)``: the keys whose re-evaluated claims differ
    from the saved ones (empty unless check() changed since the run)."""
    modname = resolve(name)
    outdir = outdir or os.path.join(QUICK_FIGURES if quick else FIGURES, modname)
    path = os.path.join(outdir, "numbers.json")
    if not (os.path.isfile(path) and saved.has_res(outdir)):
        raise NoSavedData(f"no saved data in {outdir}: run `python -m studies run S{int(modname[1:3])}"
                          f"{' --quick' if quick else ''}` first")
    with open(path) as f:
        numbers = json.load(f)
    if numbers.get("study") != modname:
        raise NoSavedData(f"{path} holds study {numbers.get('study')!r}, not {modname!r}")
    mod = importlib.import_module(f"studies.{modname}")
    cfg = saved.config_from_json(mod.Config, numbers["config"])
    try:
        res = saved.load_res(outdir, run=_run_label(numbers))
    except ValueError as e:            # another format, or another run's res.json
        raise NoSavedData(str(e)) from None
    t0 = time.perf_counter()
    claims = json.loads(json.dumps(mod.check(res, cfg)))
    figures = _plot(modname, res, cfg, outdir, numbers["quick"])
    old = {c["key"]: c for c in numbers["claims"]}
    changed = [c["key"] for c in claims if old.get(c["key"]) != c] + sorted(set(old) - {c["key"] for c in claims})
    fresh = provenance(time.perf_counter() - t0)
    numbers.update(claims=claims, figures=figures)
    numbers["provenance"]["redrawn"] = {k: fresh[k] for k in ("date", "commit", "wall_time_s")}
    with open(path, "w") as f:
        json.dump(numbers, f, indent=1)
    return numbers, changed


def summary_lines(numbers, outdir):
    """What the command line prints after a study: each check's outcome, then the figures."""
    c = numbers["claims"]
    npass = sum(1 for x in c if x["passed"] is True)
    nfail = sum(1 for x in c if x["passed"] is False)
    out = [f"{numbers['study']}: {npass} checks passed, {nfail} failed, {len(c) - npass - nfail} report-only "
           f"({numbers['provenance']['wall_time_s']} s"
           + (f"; figures redrawn in {numbers['provenance']['redrawn']['wall_time_s']} s)"
              if "redrawn" in numbers["provenance"] else ")")]
    out += [f"  {x['key']:<34} {x['outcome']}" for x in c if x["passed"] is not None]
    out += ["  figures: " + ", ".join(os.path.join(outdir, f) for f in numbers["figures"])]
    return out


#: the paper claims the report summarises: (claim, what the paper says, the checks that bear on it
#: as fnmatch patterns of check keys, the figure that shows it best). Every check with a pass flag
#: must match a row (tests/test_committed_results.py); a row's verdict is computed from all its
#: checks by VERDICT_RULE.
SUMMARY = [
    ("Lemma 1, eqs. (12)-(13)", "no finite-time blow-up with very high probability",
     ["S1.sure_bound", "S1.eq13", "S1.iii_attained", "S3.sure_bound", "S3.unclipped_exceeds", "S8.classic_bounded",
      "S9.classic_stable"], "s01_sure_bound/F1a_sure_bound.png"),
    ("Lemma 1: M_s is a supermartingale", "the sum of clipped step lengths is a supermartingale",
     ["S1.submartingale", "S1.compensator"], "s01_sure_bound/F1c_submartingale.png"),
    ("eqs. (14)-(16)", "Hoeffding-Azuma: P(|M_s - M_0| > rho) <= 2 exp(-2 rho^2 / (lam^2 sum a^2))",
     ["S1.i_*", "S1.iii_eq15", "S2.*", "S3.clipped_xi_valid_bounds", "S3.paper_constant_on_xi"],
     "s03_blowup/F3_blowup_probability.png"),
    ("Claim 2, eq. (19)", "||g/c|| <= K (1 + ||theta||); clipped adaptive steps have norm lam ||theta||",
     ["S8.claim2", "S8.radial_identity", "S9.radial_identity"], "s09_adaptive_mlp/F9b_radial_identity.png"),
    ("Lemma 3", "the noise sum xi converges (w.h.p.)", ["S4.*"], "s04_martingale/F4b_oscillation.png"),
    ("Theorem 1 (mechanism)", "clipped SGD tracks the ODE theta' = -H(theta)", ["S5.*"],
     "s05_ode_tracking/F5a_window_deviation.png"),
    ("Theorem 1: limit is an equilibrium / local minimum", "theta(inf) is a zero of H and in most cases a "
     "local minimum of the loss", ["S7.*", "S1.iv_escape", "S6.ii.*"], "s07_not_gradient/F7b_F_along_flow.png"),
    ("Theorem 1, closing remark", "E[g/c] = 0 implies E[g] = 0 since c > 0", ["S6.i.*", "S6.iii.*"],
     "s06_bias/F6a_bias_vs_lambda.png"),
    ("(A3), constant steps (outside (A2))", "adaptive clipping is numerically stable with very high probability; "
     "tested with constant steps, which (A2) excludes", ["S8.adaptive_*", "S8.unclipped_iff", "S9.stable_small_step",
                                                         "S9.diverges_large_step", "S9.crossing", "S9.unclipped_*",
                                                         "S9.layerwise"], "s09_adaptive_mlp/F9a_divergence.png"),
    ("(A3) under (A2) schedules", "the same, with steps a(k) = a0/(k+1) that satisfy (A2)",
     ["S8.a2_*", "S8.overflow_onset", "S9.a2_*"], "s08_adaptive_1d/F8b_a2_peak.png"),
    ("Abstract/intro: vanishing gradients", "clipping helps vanishing gradients; small weights get larger steps",
     [], None),
    ("Zhang et al.: clipping accelerates", "clipped GD needs iterations independent of M; fixed-step GD ~ M",
     ["S10.*", "S11.B_*"], "s10_zhang_1d/F10a_iterations_vs_M.png"),
    ("Zhang et al. Fig. 1", "local smoothness grows with the gradient norm", ["S11.A_*"],
     "s11_zhang_mlp/F11a_smoothness_vs_gradnorm.png"),
    ("Ede & Beanland, Table 1", "ALRC helps quartic small-batch training, neutral for squared errors", ["S12.*"],
     "s12_alrc/F12a_alrc_table.png"),
    ("Tails below what Monte Carlo sees (beyond the paper)", "the Azuma-type bounds of eqs. (14)-(16), in their "
     "valid forms, bound the noise's tail also far below 1/R (probabilities to 1e-10 and below by splitting)",
     ["S13.*"], "s13_rare/F13_rare_events.png"),
    ("Diffusion approximation (beyond the paper)", "around the ODE, SGD fluctuates with covariance a Σ, "
     "J Σ + Σ Jᵀ = Q (first order in a)", ["S14.*"], "s14_fluctuations/F14a_stationary_error_vs_a.png"),
]
_NO_STUDY = {"Abstract/intro: vanishing gradients": (
    "refuted (algebra)", "c >= 1 for every rule of the paper, so no gradient is ever enlarged; "
    "tests/test_clipping.py checks c >= 1 and ||g/c|| <= ||g|| on every tested vector")}


def summary_rows(numbers_list):
    """[(name, says, verdict, [(study, check)], figure)] for the SUMMARY rows, verdicts by VERDICT_RULE."""
    import fnmatch
    out = []
    for name, says, pats, fig in SUMMARY:
        found = [(n["study"], c) for n in numbers_list for c in n["claims"]
                 if any(fnmatch.fnmatchcase(c["key"], p) for p in pats)]
        if name in _NO_STUDY:
            verdict = _NO_STUDY[name][0]
        elif not found:
            verdict = "not run"
        else:
            verdict = aggregate(outcome(c["verdict"], c["passed"]) for _, c in found)
        out.append((name, says, verdict, found, fig))
    return out


def _cell(v):
    """A Markdown table cell: pipes escaped, no line breaks."""
    return str(v).replace("|", "\\|").replace("\n", " ")


def _anchor(name):
    import re
    return re.sub(r"[^a-z0-9_ -]", "", name.lower()).replace(" ", "-")      # as GitHub makes heading ids


def _decisive(found):
    """The check that decides a row's verdict: an established refutation, else a failed check, else
    the first check with a pass flag."""
    checked = [(s, c) for s, c in found if c["passed"] is not None]
    for want in ("refuted", "tool check failed", "not supported", "inconclusive"):
        for s, c in checked:
            if outcome(c["verdict"], c["passed"]) == want:
                return s, c
    return checked[0] if checked else (found[0] if found else (None, None))


def _short(v, n=160):
    m = _fmt(v)
    return m if len(m) <= n else m[:n] + "…"


def _summary(rows, figdir):
    out = ["## Verdicts by paper claim", "",
           "| paper claim | the paper says | verdict | checks passed |", "|---|---|---|---|"]
    table = summary_rows(rows)
    for name, says, verdict, found, _ in table:
        checked = [c for _, c in found if c["passed"] is not None]
        npass = "–" if name in _NO_STUDY else f"{sum(c['passed'] for c in checked)} of {len(checked)}"
        out.append(f"| [{_cell(name)}](#{_anchor(name)}) | {_cell(says)} | **{verdict}** | {npass} |")
    out += ["", "How a verdict is reached: " + VERDICT_RULE, "", "## Claim by claim", ""]
    for name, says, verdict, found, fig in table:
        out += [f"### {name}", "", f"*The paper says:* {says}. **Verdict: {verdict}.**", ""]
        if name in _NO_STUDY:
            out += [_NO_STUDY[name][1] + ".", ""]
            continue
        if not found:
            out += ["Not run: `python -m studies run all`.", ""]
            continue
        s, c = _decisive(found)
        checked = [(st, x) for st, x in found if x["passed"] is not None]
        out += [f"{sum(x['passed'] for _, x in checked)} of {len(checked)} checks passed. Deciding check "
                f"([{c['key']}]({s}/REPORT.md), {outcome(c['verdict'], c['passed'])}): {c['statement']}. "
                f"Measured: {_short(c['measured'])}.", ""]
        others = [f"[{x['key']}]({st}/REPORT.md) {outcome(x['verdict'], x['passed'])}" for st, x in checked
                  if x is not c]
        if others:
            out += ["Other checks: " + ", ".join(others) + ".", ""]
        if fig and os.path.exists(os.path.join(figdir, fig)):
            out += [f"![{name}]({fig})", ""]
    return out


def _study_page(n):
    """figures/<study>/REPORT.md: every check of one study with its numbers."""
    mode = " (QUICK mode: small sizes, not the committed full run)" if n["quick"] else ""
    lines = [f"# {n['study']}: {n['title']}{mode}", "", "[Back to the report](../REPORT.md)", "",
             "Figures: " + ", ".join(f"[{fig}]({fig})" for fig in n["figures"]), "",
             "| paper claim | check | measured | criterion | pass | a pass means | outcome |",
             "|---|---|---|---|---|---|---|"]
    for c in n["claims"]:
        ok = {True: "yes", False: "**no**", None: "–"}[c["passed"]]
        lines.append(f"| {_cell(c['paper'] or '')} | {_cell(c['statement'])} | {_cell(_fmt(c['measured']))} "
                     f"| {_cell(_fmt(c['threshold']))} | {ok} | {c['verdict'] or ''} | {c.get('outcome') or outcome(c['verdict'], c['passed'])} |")
        if c.get("note"):
            lines.append(f"| | *note:* {_cell(c['note'])} | | | | | |")
    p = n["provenance"]
    lines += ["", f"Run: {p['wall_time_s']} s, commit {p['commit']}, {p['threads']} threads, {p['date']}.", ""]
    for fig in n["figures"]:
        lines += [f"![{fig}]({fig})", ""]
    return lines


def write_report(figdir=FIGURES):
    """figdir/REPORT.md (the verdict per paper claim, a short account of each with its figure) and
    figdir/<study>/REPORT.md (every check of the study with its numbers); returns the first path."""
    rows = []
    for s in STUDIES:
        p = os.path.join(figdir, s, "numbers.json")
        if os.path.exists(p):
            with open(p) as f:
                rows.append(json.load(f))
    lines = ["# dynclip report: the seed papers' claims, tested", "",
             "Generated by `python -m studies report` from the studies' `numbers.json`. For each claim of the "
             "papers: the verdict, how many of its checks passed, the check that decides it and one figure. "
             "Each study's page lists every check with its numbers, its pass criterion, what a pass means for "
             "the paper's claim (confirmed / refuted / corrected; report = a check of the tool itself or a row "
             "shown without a verdict) and the check's outcome.", ""]
    if not rows:
        lines.append("No study has been run yet: `python -m studies run all`.")
    else:
        quick = [n["study"] for n in rows if n["quick"]]
        if quick:
            lines += [f"**QUICK mode** (small sizes, not the committed full results): {', '.join(quick)}.", ""]
        lines += _summary(rows, figdir)
        lines += ["## Studies", ""] + [f"- [{n['study']}]({n['study']}/REPORT.md): {n['title']}" for n in rows] + [""]
    for n in rows:
        with open(os.path.join(figdir, n["study"], "REPORT.md"), "w") as f:
            f.write("\n".join(_study_page(n)) + "\n")
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
    return str(v)
