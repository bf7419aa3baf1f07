"""Cold start, handling time and peak memory of the four function binaries
on a 20-year daily backfill of one ticker, then on the next day's daily run
of that ticker (one new session on top of the 20 years), each run as Lambda
runs it: a fresh process speaking the Runtime API (runtime_api.py), against
local AWS (local_stack.py), the local chart server (`mdp serve-charts`) and
Postgres. Also counted per invocation, for the cost model
(infra/local/cost_model.py): the bytes the function logged (stdout and
stderr at RUST_LOG=info, the template's default LogLevel: JSON log lines and
EMF metric documents), its S3 requests by method and its other AWS requests
(SQS, Secrets Manager), read from moto's request log; and, after the
backfill, the lake's bytes per zone.

    python3 infra/local/measure_lambdas.py [--bin-dir $CARGO_TARGET_DIR/release] [--years 20] [--repeat 3]

Each round starts from an empty lake and warehouse; the figures printed and
written are the medians of the rounds (each round's own are kept too).

Writes .local/measure.json. Package sizes are read from
target/lambda/<function>/bootstrap.zip (`make build`).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import local_stack  # noqa: E402
from runtime_api import RuntimeApi  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
SCHEMA = "mdp_lambda_measure"
FUNCTIONS = ("validate", "fetch", "transform", "load")
# A request line of moto's (werkzeug's) log: "GET /bucket/key?x HTTP/1.1" 200
REQUEST_LINE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/[0-9.]+" (\d{3})')


def sqs_event(sqs, queue_url):
    out = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])
    records = []
    for m in out.get("Messages", []):
        records.append({
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:local",
            "awsRegion": "us-east-1",
        })
    return {"Records": records}, out.get("Messages", [])


def moto_requests(log_path, since):
    """The requests moto logged after byte offset `since`: S3 ones by method
    (on the lake bucket), and the others (SQS and Secrets Manager, which both
    POST to /)."""
    s3, other = Counter(), 0
    with open(log_path, "rb") as f:
        f.seek(since)
        for line in f.read().decode(errors="replace").splitlines():
            m = REQUEST_LINE.search(line)
            if not m:
                continue
            method, path, _status = m.groups()
            if path.startswith(f"/{local_stack.BUCKET}"):
                listing = method == "GET" and ("list-type=" in path or path.rstrip("/") == f"/{local_stack.BUCKET}"
                                               or path.startswith(f"/{local_stack.BUCKET}?"))
                s3["LIST" if listing else method] += 1
            else:
                other += 1
    return dict(s3), other


def cpu_ms(pid):
    """CPU time the process's threads have used so far, in ms (the first field
    of each /proc/<pid>/task/<tid>/schedstat, in ns)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e6


def emf_metrics(documents):
    """The distinct CloudWatch metrics the EMF documents define: name and
    dimensions with their values (CloudWatch counts each combination as one
    custom metric)."""
    found = set()
    for doc in documents:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    found.add((metric["Name"], ",".join(f"{d}={doc.get(d)}" for d in dimensions)))
    return sorted(found)


def run_function(binary, env, event):
    api = RuntimeApi()
    full_env = dict(os.environ, **env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.port}",
                    AWS_LAMBDA_FUNCTION_NAME=binary.name, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
                    AWS_LAMBDA_FUNCTION_VERSION="$LATEST", RUST_LOG="info")
    moto_log = local_stack.STATE / "moto.log"
    log_start = moto_log.stat().st_size if moto_log.exists() else 0
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    started = time.monotonic()
    proc = subprocess.Popen([str(binary)], env=full_env, stdout=out, stderr=err)
    try:
        init_done = api.wait_for_init()
        init_cpu = cpu_ms(proc.pid)
        _, status, body, took = api.invoke(event)
        handle_cpu = cpu_ms(proc.pid) - init_cpu
        with open(f"/proc/{proc.pid}/status") as f:
            peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    finally:
        proc.kill()
        proc.wait()
        api.close()
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    if status != "response":
        sys.exit(f"{binary.name} failed: {body}\n{stderr.decode()[-2000:]}")
    time.sleep(0.2)  # moto's log lines of the last requests
    s3, other = moto_requests(moto_log, log_start) if moto_log.exists() else ({}, None)
    emf = [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{") and '"_aws"' in line]
    stage_ms = [doc.get("StageDuration") for doc in emf if doc.get("StageDuration") is not None]
    return {"init_ms": (init_done - started) * 1000, "handle_ms": took * 1000,
            "init_cpu_ms": init_cpu, "handle_cpu_ms": handle_cpu,
            "peak_rss_mb": peak_kb / 1024, "log_bytes": len(stdout) + len(stderr),
            "log_lines": stdout.count(b"\n") + stderr.count(b"\n"),
            "emf_documents": len(emf), "emf_bytes": sum(len(json.dumps(d, separators=(",", ":"))) + 1 for d in emf),
            "emf_metrics": emf_metrics(emf),
            "stage_duration_ms": stage_ms, "s3_requests": s3, "other_aws_requests": other,
            "response": body}


def run_chain(bins, env, sqs, validate_event):
    """validate with `validate_event`, then fetch, transform and load each on
    the one message its queue then holds; every function a fresh process."""
    results = {"validate": run_function(bins / "validate", env, validate_event)}
    for name, queue in (("fetch", "FETCH_QUEUE_URL"), ("transform", "TRANSFORM_QUEUE_URL"), ("load", "LOAD_QUEUE_URL")):
        event, messages = sqs_event(sqs, env[queue])
        if not messages:
            sys.exit(f"no message for {name} in {env[queue]}")
        results[name] = run_function(bins / name, env, event)
        results[name]["records"] = len(messages)
        failures = json.loads(results[name]["response"]).get("batchItemFailures", [])
        if failures:
            sys.exit(f"{name} reported failures: {failures}")
        for m in messages:
            sqs.delete_message(QueueUrl=env[queue], ReceiptHandle=m["ReceiptHandle"])
    return results


def last_sessions(chart_port):
    """The two last session dates of SYNTH, asked of the chart server."""
    url = f"http://127.0.0.1:{chart_port}/v8/finance/chart/SYNTH?period1=0&period2=99999999999&interval=1d"
    with urllib.request.urlopen(url) as r:
        stamps = json.load(r)["chart"]["result"][0]["timestamp"]
    day = lambda ts: datetime.fromtimestamp(ts, timezone.utc).date().isoformat()  # noqa: E731 (14:30 UTC: same date in New York)
    return day(stamps[-2]), day(stamps[-1]), len(stamps)


def print_table(title, results):
    print(title)
    print(f"{'function':<10} {'package':>12} {'cold start':>11} {'handle':>10} {'of it CPU':>10} {'peak RSS':>10} {'log bytes':>10} {'S3 requests':>24} {'SQS/SM':>7}")
    for name, r in results.items():
        zip_path = TARGET / "lambda" / name / "bootstrap.zip"
        size = f"{zip_path.stat().st_size / 1e6:.1f} MB" if zip_path.exists() else "-"
        s3 = " ".join(f"{k}:{v}" for k, v in sorted(r["s3_requests"].items())) or "-"
        print(f"{name:<10} {size:>12} {r['init_ms']:>8.1f} ms {r['handle_ms']:>7.1f} ms {r['handle_cpu_ms']:>7.1f} ms {r['peak_rss_mb']:>7.1f} MB "
              f"{r['log_bytes']:>10} {s3:>24} {r['other_aws_requests'] if r['other_aws_requests'] is not None else '-':>7}")


def lake_bytes(s3):
    """Bytes of the lake by zone (raw, curated, state)."""
    sizes = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=local_stack.BUCKET, Prefix="lake/"):
        for obj in page.get("Contents", []):
            sizes[obj["Key"].split("/")[1]] += obj["Size"]
    return dict(sizes)


def reset(postgres, env, sqs, s3):
    """A fresh warehouse schema, empty queues and an empty lake."""
    subprocess.run(["psql", postgres, "-q", "-c", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"], check=True,
                   stderr=subprocess.DEVNULL)
    for key in ("FETCH_QUEUE_URL", "TRANSFORM_QUEUE_URL", "LOAD_QUEUE_URL"):
        sqs.purge_queue(QueueUrl=env[key])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=local_stack.BUCKET, Prefix="lake/"):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=local_stack.BUCKET, Key=obj["Key"])


def median_results(rounds):
    """Per function, the median of each number over the rounds (the rest from the first round)."""
    merged = {}
    for name, first in rounds[0].items():
        merged[name] = dict(first)
        for key, value in first.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[name][key] = statistics.median(r[name][key] for r in rounds)
        merged[name]["rounds"] = {key: [r[name][key] for r in rounds]
                                  for key in ("init_ms", "handle_ms", "handle_cpu_ms", "peak_rss_mb")}
    return merged


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", default=str(TARGET / "release"))
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--chart-port", type=int, default=9877)
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds (backfill then daily run, from an empty lake); medians are reported")
    args = parser.parse_args()
    bins = Path(args.bin_dir)
    postgres = os.environ.get("MDP_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")

    env = local_stack.up(postgres)
    sqs, s3 = local_stack.client("sqs"), local_stack.client("s3")
    mdp = next(p for p in (bins / "mdp", TARGET / "debug" / "mdp") if p.exists())
    chart = subprocess.Popen([str(mdp), "serve-charts", "--port", str(args.chart_port),
                              "--synthetic-years", str(args.years)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    chart.stdout.readline()
    try:
        env.update({
            "YAHOO_FINANCE_API_BASE_URL": f"http://127.0.0.1:{args.chart_port}/v8/finance/chart",
            "MARKET_DATA_DEFAULT_TICKERS": "SYNTH",
            "MARKET_DATA_BACKFILL_DAYS": str(args.years * 366 + 10),
            "WAREHOUSE_SCHEMA": SCHEMA,
        })
        count = lambda: int(subprocess.run(  # noqa: E731
            ["psql", postgres, "-At", "-c", f"select count(*) from {SCHEMA}.fact_market_data"],
            capture_output=True, text=True, check=True).stdout.strip())
        # The backfill up to the day before the last session, then the daily
        # run that brings in the last session on top of it.
        before_last, last, sessions = last_sessions(args.chart_port)
        backfills, dailies = [], []
        load_before = os.getloadavg()[0]
        for _ in range(args.repeat):
            reset(postgres, env, sqs, s3)
            backfills.append(run_chain(bins, env, sqs, {"date": before_last}))
            backfill_rows = count()
            lake = lake_bytes(s3)
            dailies.append(run_chain(bins, env, sqs, {"date": last}))
            daily_rows = count() - backfill_rows
            if backfill_rows != sessions - 1 or daily_rows != 1:
                sys.exit(f"expected {sessions - 1} rows from the backfill and 1 from the daily run, "
                         f"got {backfill_rows} and {daily_rows}")
        backfill, daily = median_results(backfills), median_results(dailies)
        load_after = os.getloadavg()[0]
        print(f"host ({os.uname().machine}) binaries from {bins}; each invocation a fresh process, 128 MB declared; "
              f"medians of {args.repeat} rounds; load average {load_before:.1f} before, {load_after:.1f} after")
        print_table(f"{args.years}-year backfill of SYNTH up to {before_last}: {backfill_rows} rows loaded", backfill)
        print_table(f"daily run of SYNTH for {last} on that history: {daily_rows} row loaded", daily)
        print("lake after the backfill: " + ", ".join(f"{zone} {size / 1e6:.2f} MB" for zone, size in sorted(lake.items())))
        strip = lambda results: {n: {k: v for k, v in r.items() if k != "response"} for n, r in results.items()}  # noqa: E731
        measured = {
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": os.uname().machine, "bin_dir": str(bins), "years": args.years, "rounds": args.repeat,
            "load_average": [load_before, load_after],
            "backfill": {"rows": backfill_rows, "last_date": before_last, "functions": strip(backfill), "lake_bytes": lake},
            "daily": {"rows": daily_rows, "date": last, "functions": strip(daily)},
        }
        (local_stack.STATE / "measure.json").write_text(json.dumps(measured, indent=1))
        print(f"written to {local_stack.STATE / 'measure.json'}")
    finally:
        chart.kill()
        subprocess.run(["psql", postgres, "-q", "-c", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"], stderr=subprocess.DEVNULL)
        local_stack.down()


if __name__ == "__main__":
    main()
