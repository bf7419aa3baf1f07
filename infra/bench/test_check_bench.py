"""Tests of the benchmark regression guard (run by `make test`):

    python3 -m unittest discover -s infra/bench -p 'test_*.py'
"""
import copy
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import check_bench  # noqa: E402

SCRIPT = Path(__file__).parent / "check_bench.py"

BASELINE = {
    "format": 1,
    "mode": "quick",
    "optimized": True,
    "cpus": 2,
    "sizes": {"tickers": 100, "ticker_years": 10, "indicator_bars": 250000},
    "figures": [
        {"name": "load.psql_copy", "value": 2.0, "unit": "s", "goal": None},
        {"name": "load.append", "value": 2.2, "unit": "s", "goal": None},
    ],
    "ratios": [
        {"name": "load.append_vs_psql_copy", "value": 1.1, "unit": "x", "better": "lower",
         "numerator": "load.append", "denominator": "load.psql_copy"},
        {"name": "one_new_day.31y_vs_1y", "value": 1.8, "unit": "x", "better": "lower",
         "numerator": "one_new_day.31y.wall", "denominator": "one_new_day.1y.wall"},
    ],
}


def with_ratio(doc, name, value):
    out = copy.deepcopy(doc)
    for r in out["ratios"]:
        if r["name"] == name:
            r["value"] = value
    return out


class CompareTest(unittest.TestCase):
    def test_the_baseline_itself_passes(self):
        _, failures = check_bench.compare(BASELINE, copy.deepcopy(BASELINE))
        self.assertEqual(failures, [])

    def test_other_absolute_times_and_better_ratios_pass(self):
        run = with_ratio(BASELINE, "load.append_vs_psql_copy", 0.5)
        run["figures"][0]["value"] = 20.0  # a machine ten times slower
        _, failures = check_bench.compare(BASELINE, run)
        self.assertEqual(failures, [])

    def test_a_ratio_worse_by_less_than_twice_passes(self):
        _, failures = check_bench.compare(BASELINE, with_ratio(BASELINE, "one_new_day.31y_vs_1y", 3.5))
        self.assertEqual(failures, [])

    def test_a_ratio_worse_by_more_than_twice_fails_naming_it_with_baseline_now_and_limit(self):
        _, failures = check_bench.compare(BASELINE, with_ratio(BASELINE, "load.append_vs_psql_copy", 2.5))
        self.assertEqual(len(failures), 1)
        message = failures[0]
        self.assertIn("load.append_vs_psql_copy", message)
        self.assertIn("baseline 1.1", message)
        self.assertIn("now 2.5", message)
        self.assertIn("limit 2.2", message)

    def test_a_ratio_missing_from_the_run_fails(self):
        run = copy.deepcopy(BASELINE)
        run["ratios"] = run["ratios"][:1]
        _, failures = check_bench.compare(BASELINE, run)
        self.assertEqual(len(failures), 1)
        self.assertIn("one_new_day.31y_vs_1y", failures[0])

    def test_a_ratio_new_in_the_run_is_reported_not_failed(self):
        run = copy.deepcopy(BASELINE)
        run["ratios"].append({"name": "brand_new", "value": 9.0, "better": "lower"})
        lines, failures = check_bench.compare(BASELINE, run)
        self.assertEqual(failures, [])
        self.assertTrue(any("brand_new" in line and "new" in line for line in lines))

    def test_a_higher_is_better_ratio_fails_when_halved(self):
        base = copy.deepcopy(BASELINE)
        base["ratios"] = [{"name": "speedup", "value": 4.0, "better": "higher"}]
        _, ok = check_bench.compare(base, with_ratio(base, "speedup", 2.5))
        _, bad = check_bench.compare(base, with_ratio(base, "speedup", 1.5))
        self.assertEqual(ok, [])
        self.assertEqual(len(bad), 1)

    def test_other_sizes_or_a_debug_build_cannot_be_compared(self):
        other_size = copy.deepcopy(BASELINE)
        other_size["sizes"]["tickers"] = 500
        with self.assertRaises(check_bench.Incomparable):
            check_bench.compare(BASELINE, other_size)
        debug = copy.deepcopy(BASELINE)
        debug["optimized"] = False
        with self.assertRaises(check_bench.Incomparable):
            check_bench.compare(BASELINE, debug)


class MedianTest(unittest.TestCase):
    def test_a_baseline_is_the_median_of_each_ratio_and_figure(self):
        runs = [with_ratio(BASELINE, "load.append_vs_psql_copy", v) for v in (1.4, 0.9, 2.6)]
        runs[2]["figures"][0]["value"] = 7.0
        baseline = check_bench.median_of(runs)
        ratio = {r["name"]: r["value"] for r in baseline["ratios"]}
        self.assertEqual(ratio["load.append_vs_psql_copy"], 1.4)
        self.assertEqual(ratio["one_new_day.31y_vs_1y"], 1.8)
        self.assertEqual(baseline["figures"][0]["value"], 2.0)
        self.assertEqual(len(baseline["median_of"]), 3)

    def test_runs_of_other_sizes_make_no_baseline(self):
        other = copy.deepcopy(BASELINE)
        other["sizes"]["tickers"] = 500
        with self.assertRaises(check_bench.Incomparable):
            check_bench.median_of([BASELINE, other])


class CommandTest(unittest.TestCase):
    """The script as `make bench-check` runs it: exit status and messages."""

    def run_script(self, baseline, run):
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for name, doc in (("baseline.json", baseline), ("run.json", run)):
                path = Path(tmp) / name
                path.write_text(json.dumps(doc))
                paths.append(str(path))
            return subprocess.run([sys.executable, str(SCRIPT), *paths],
                                  capture_output=True, text=True, check=False)

    def test_an_equal_run_exits_0(self):
        out = self.run_script(BASELINE, BASELINE)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("within 2x", out.stdout)

    def test_a_regressed_run_exits_1_naming_the_ratio(self):
        out = self.run_script(BASELINE, with_ratio(BASELINE, "one_new_day.31y_vs_1y", 4.0))
        self.assertEqual(out.returncode, 1)
        self.assertIn("ratio one_new_day.31y_vs_1y regressed: baseline 1.8, now 4", out.stderr)
        self.assertIn("limit 3.6", out.stderr)

    def test_record_writes_a_baseline_the_runs_pass_against(self):
        with tempfile.TemporaryDirectory() as tmp:
            runs = []
            for i, value in enumerate((1.0, 1.2, 1.1)):
                path = Path(tmp) / f"run{i}.json"
                path.write_text(json.dumps(with_ratio(BASELINE, "load.append_vs_psql_copy", value)))
                runs.append(str(path))
            out = Path(tmp) / "baseline.json"
            recorded = subprocess.run([sys.executable, str(SCRIPT), "--record", str(out), *runs],
                                      capture_output=True, text=True, check=False)
            self.assertEqual(recorded.returncode, 0, recorded.stderr)
            ratios = {r["name"]: r["value"] for r in json.loads(out.read_text())["ratios"]}
            self.assertEqual(ratios["load.append_vs_psql_copy"], 1.1)
            checked = subprocess.run([sys.executable, str(SCRIPT), str(out), runs[0]],
                                     capture_output=True, text=True, check=False)
            self.assertEqual(checked.returncode, 0, checked.stderr)

    def test_an_incomparable_run_exits_2(self):
        run = copy.deepcopy(BASELINE)
        run["mode"] = "full"
        out = self.run_script(BASELINE, run)
        self.assertEqual(out.returncode, 2)
        self.assertIn("mode", out.stderr)


if __name__ == "__main__":
    unittest.main()
