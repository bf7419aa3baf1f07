#!/usr/bin/env python3
"""The benchmark regression guard (`make bench-check`).

    python3 infra/bench/check_bench.py BASELINE.json RUN.json [--max-factor 2]
    python3 infra/bench/check_bench.py --record BASELINE.json RUN.json RUN.json RUN.json

Compares the machine-independent ratios of a `mdp bench --json` run (mdp's
load against `psql \\copy` of the same rows, a daily run with 31 years of
history against one with 1 year, ...) with the committed baseline, and fails
(exit 1) when any ratio got worse by more than --max-factor (2 by default):
each failure names the ratio, its baseline, its value now and the limit.
Absolute times and memory are printed for information only, never compared:
they depend on the machine.

The run and the baseline must be of the same mode and sizes (`--quick` for
both); a debug build's figures are refused. Exit 2 means the files could not
be compared at all.

--record writes a baseline from several runs of the same mode and sizes:
the first run with each figure and ratio replaced by its median over the
runs, so one disturbed run does not set the bar. `make bench-baseline` does
that with three quick runs; review and commit infra/bench/baseline.json.
"""
import argparse
import copy
import json
import statistics
import sys

FORMAT = 1


class Incomparable(Exception):
    """The two documents cannot be compared (not a regression)."""


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise Incomparable(f"{path}: {e}") from e
    if doc.get("format") != FORMAT:
        raise Incomparable(f"{path}: format {doc.get('format')!r}, expected {FORMAT}")
    return doc


def limit_of(baseline_value, better, max_factor):
    """The worst value allowed: max_factor times worse than the baseline."""
    return baseline_value * max_factor if better == "lower" else baseline_value / max_factor


def is_within(value, limit, better):
    return value <= limit if better == "lower" else value >= limit


def describe(doc):
    """Mode, date, CPUs and how busy the machine was (one run, or a median's runs)."""
    loads = doc.get("load_average")
    loads = loads if isinstance(loads, list) else [loads]
    busy = ", ".join(
        f"{(load or {}).get('before', '?')} → {(load or {}).get('after', '?')}" for load in loads
    )
    when = doc.get("median_of") and f"median of runs recorded {', '.join(str(t) for t in doc['median_of'])}"
    when = when or f"recorded {doc.get('recorded_at', '?')}"
    return f"{doc.get('mode')} mode, {when}, {doc.get('cpus', '?')} cpus, load average {busy}"


def compare(baseline, run, max_factor=2.0):
    """Returns (report lines, failure lines); no failures means the run passes."""
    if not run.get("optimized", False):
        raise Incomparable("the run is from a debug build: its ratios mean nothing (run `make bench-check`)")
    for key in ("mode", "sizes"):
        if baseline.get(key) != run.get(key):
            raise Incomparable(
                f"the run's {key} {json.dumps(run.get(key))} differs from the baseline's "
                f"{json.dumps(baseline.get(key))}: compare like with like, or re-record the "
                "baseline with `make bench-baseline`"
            )
    lines, failures = [], []
    for label, doc in (("baseline", baseline), ("this run", run)):
        lines.append(f"{label}: {describe(doc)}")
    base_figures = {f["name"]: f for f in baseline.get("figures", [])}
    lines.append("absolute figures (machine-dependent; reported, not compared):")
    for f in run.get("figures", []):
        before = base_figures.get(f["name"])
        was = f"{before['value']:.4g}" if before else "-"
        lines.append(f"  {f['name']:<40} baseline {was:>10}  now {f['value']:>10.4g} {f['unit']}")

    run_ratios = {r["name"]: r for r in run.get("ratios", [])}
    lines.append(f"ratios (fail when more than {max_factor:g}x worse than the baseline):")
    for base in baseline.get("ratios", []):
        name, was = base["name"], base["value"]
        better = base.get("better", "lower")
        now_ratio = run_ratios.pop(name, None)
        if now_ratio is None:
            failures.append(
                f"ratio {name}: in the baseline ({was:.4g}) but not measured by this run; "
                "re-record the baseline if it was removed on purpose"
            )
            continue
        now = now_ratio["value"]
        if was <= 0:
            lines.append(f"  {name:<40} baseline {was:.4g} is not positive: not compared")
            continue
        limit = limit_of(was, better, max_factor)
        verdict = "ok" if is_within(now, limit, better) else "REGRESSION"
        lines.append(
            f"  {name:<40} baseline {was:>8.4g}  now {now:>8.4g}  limit {limit:>8.4g}  {verdict}"
        )
        if verdict != "ok":
            worse = now / was if better == "lower" else was / now
            failures.append(
                f"ratio {name} regressed: baseline {was:.4g}, now {now:.4g} "
                f"({worse:.2f}x worse), limit {limit:.4g} ({max_factor:g}x the baseline, {better} is better)"
            )
    for name, r in run_ratios.items():
        lines.append(f"  {name:<40} new, not in the baseline: {r['value']:.4g}")
    return lines, failures


def goal_met(goal, value):
    if not goal:
        return None
    return value <= goal["value"] if goal["op"] == "<=" else value < goal["value"]


def median_of(runs):
    """A baseline from several runs: each figure's and ratio's median value."""
    first = runs[0]
    for run in runs[1:]:
        for key in ("mode", "sizes", "optimized"):
            if run.get(key) != first.get(key):
                raise Incomparable(f"the runs differ in {key}: {run.get(key)!r} and {first.get(key)!r}")
    out = copy.deepcopy(first)
    for kind in ("figures", "ratios"):
        for entry in out.get(kind, []):
            values = [e["value"] for run in runs for e in run.get(kind, []) if e["name"] == entry["name"]]
            if len(values) != len(runs):
                raise Incomparable(f"{entry['name']} is not in every run")
            entry["value"] = round(statistics.median(values), 4)
            if "goal" in entry:
                entry["goal_met"] = goal_met(entry["goal"], entry["value"])
    out["load_average"] = [run.get("load_average") for run in runs]
    out["median_of"] = [run.get("recorded_at") for run in runs]
    return out


def record(out_path, run_paths):
    try:
        baseline = median_of([load(p) for p in run_paths])
    except Incomparable as e:
        print(f"check_bench: cannot record a baseline: {e}", file=sys.stderr)
        return 2
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(baseline, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"check_bench: {out_path} recorded as the median of {len(run_paths)} runs:")
    for r in baseline.get("ratios", []):
        print(f"  {r['name']:<40} {r['value']:.4g}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="BASELINE RUN to compare; with --record, BASELINE RUN [RUN ...]")
    parser.add_argument("--record", action="store_true",
                        help="write BASELINE as the median of the RUNs instead of comparing")
    parser.add_argument("--max-factor", type=float, default=2.0,
                        help="how many times worse a ratio may get (default 2)")
    args = parser.parse_args(argv)
    if args.record:
        if len(args.files) < 2:
            parser.error("--record needs BASELINE and at least one RUN")
        return record(args.files[0], args.files[1:])
    if len(args.files) != 2:
        parser.error("give BASELINE and RUN")
    args.baseline, args.run = args.files
    try:
        lines, failures = compare(load(args.baseline), load(args.run), args.max_factor)
    except Incomparable as e:
        print(f"check_bench: cannot compare {args.run} with {args.baseline}: {e}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    if failures:
        print(f"\ncheck_bench: {len(failures)} ratio(s) regressed beyond {args.max_factor:g}x "
              f"against {args.baseline}:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print(f"check_bench: every ratio is within {args.max_factor:g}x of {args.baseline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
