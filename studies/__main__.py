"""python -m studies list | run S5 [--quick] [--out DIR] | run all [--quick] | report"""
import argparse
import sys

from . import _harness as h


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m studies", description=__doc__,
                                epilog="examples: python -m studies run S2 --quick; python -m studies run all; "
                                       "python -m studies report")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the studies")
    r = sub.add_parser("run", help="run one study (S1..S12) or all")
    r.add_argument("study")
    r.add_argument("--quick", action="store_true", help="small sizes (seconds), for smoke tests")
    r.add_argument("--out", default=None, help="output folder (default figures/<study>; 'all' uses subfolders)")
    sub.add_parser("report", help="write figures/REPORT.md from figures/*/numbers.json")
    a = p.parse_args(argv)
    if a.cmd == "list":
        import importlib
        for s in h.available():
            print(f"S{int(s[1:3]):<3} {s:<20} {importlib.import_module('studies.' + s).TITLE}")
        return 0
    if a.cmd == "report":
        print(h.write_report())
        return 0
    try:
        names = h.available() if a.study == "all" else [h.resolve(a.study)]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import os
    failed = 0
    for s in names:
        out = None if a.out is None else (os.path.join(a.out, s) if a.study == "all" else a.out)
        n = h.run_study(s, quick=a.quick, outdir=out)
        print(h.summary_line(n))
        failed += sum(1 for c in n["claims"] if c["passed"] is False)
    if a.study == "all" and a.out is None:
        print(h.write_report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
