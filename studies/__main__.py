"""python -m studies list | run S5 [--quick] [--out DIR] | run all [--quick] [--out DIR]
                   | replot S5 [--quick] [--out DIR] | replot all [--quick] [--out DIR] | report [DIR]

Run from the root of a clone of the repository (the studies are not installed with dynclip).
A study prints each check's outcome and its figures. Exit code 0 when every study ran, whatever
the verdicts (a paper's claim that fails is a result, shown as its outcome); 1 when a study could
not run (the tool failed); 2 for bad usage.

`run` saves the study's result (res.json + data.npz beside numbers.json); `replot` redraws the
figures from it without simulating: it re-evaluates the checks from the saved numbers, rewrites
the figures and numbers.json (which keeps the run's provenance and records when it was redrawn).
Use it after changing a figure (studies/plots/<study>.py) or a check. A folder without saved data
gives exit code 2: run the study first.
"""
import argparse
import os
import sys
import traceback

from . import _harness as h


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m studies", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples: python -m studies run S2 --quick; python -m studies run all; "
                                       "python -m studies replot S2 --quick; python -m studies report")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the studies")
    r = sub.add_parser("run", help="run one study (S1..S14) or all")
    r.add_argument("study")
    r.add_argument("--quick", action="store_true",
                   help="small sizes (seconds to a minute), written to figures/quick/ unless --out is given")
    r.add_argument("--out", default=None,
                   help="output folder (default figures/<study>, or figures/quick/<study> with --quick; "
                        "'all' uses subfolders and writes DIR/REPORT.md)")
    rp = sub.add_parser("replot", help="redraw one study's (or all) figures from the data its run saved")
    rp.add_argument("study")
    rp.add_argument("--quick", action="store_true", help="the quick run's folder (figures/quick/<study>)")
    rp.add_argument("--out", default=None, help="the run's folder (default figures/<study>, or "
                                                "figures/quick/<study> with --quick; 'all' uses subfolders)")
    rep = sub.add_parser("report", help="write REPORT.md from the studies' numbers.json files in a folder")
    rep.add_argument("folder", nargs="?", default=None, help="default figures/")
    a = p.parse_args(argv)
    if a.cmd == "list":
        import importlib
        for s in h.available():
            print(f"S{int(s[1:3]):<3} {s:<20} {importlib.import_module('studies.' + s).TITLE}")
        return 0
    if a.cmd == "report":
        folder = a.folder or h.FIGURES
        if not os.path.isdir(folder):
            print(f"error: folder {folder!r} does not exist", file=sys.stderr)
            return 2
        print(h.write_report(folder))
        return 0
    try:
        names = h.available() if a.study == "all" else [h.resolve(a.study)]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    base = a.out or (h.QUICK_FIGURES if a.quick else h.FIGURES)
    if a.cmd == "replot":
        missing, broken = _each(a, names, base, _replot_one, "the figures could not be redrawn")
        if a.study == "all" and len(missing) < len(names):
            print(h.write_report(base))
        return 1 if broken else 2 if missing else 0
    _, broken = _each(a, names, base, _run_one, "the study could not run")
    if a.study == "all":
        print(h.write_report(base))
    return 1 if broken else 0


def _run_one(a, s, out):
    n = h.run_study(s, quick=a.quick, outdir=out)
    print("\n".join(h.summary_lines(n, out)))


def _replot_one(a, s, out):
    n, changed = h.replot_study(s, outdir=out, quick=a.quick)
    print("\n".join(h.summary_lines(n, out)))
    if changed:
        print(f"  note: check() now gives different claims than the run recorded: {', '.join(changed)}")


def _each(a, names, base, work, failure):
    """``work(a, study, folder)`` for each study; returns the studies without saved data and those
    that failed (reported, the others still run)."""
    missing, broken = [], []
    for s in names:
        out = os.path.join(base, s) if (a.study == "all" or a.out is None) else a.out
        try:
            work(a, s, out)
        except h.NoSavedData as e:
            print(f"error: {e}", file=sys.stderr)
            missing.append(s)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            traceback.print_exc()
            print(f"{s}: {failure} (see the error above)", file=sys.stderr)
            broken.append(s)
    return missing, broken

if __name__ == "__main__":
    sys.exit(main())
