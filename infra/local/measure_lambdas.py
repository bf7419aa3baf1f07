"""Cold start, handling time and peak memory of the four function binaries
on a 20-year daily backfill of one ticker, each run as Lambda runs it: a
fresh process speaking the Runtime API (runtime_api.py), against local AWS
(local_stack.py), the local chart server (`mdp serve-charts`) and Postgres.

    python3 infra/local/measure_lambdas.py [--bin-dir target/release] [--years 20]

Package sizes are read from target/lambda/<function>/bootstrap.zip (`make build`).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import local_stack  # noqa: E402
from runtime_api import RuntimeApi  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "mdp_lambda_measure"


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


def run_function(binary, env, event):
    api = RuntimeApi()
    full_env = dict(os.environ, **env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.port}",
                    AWS_LAMBDA_FUNCTION_NAME=binary.name, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
                    AWS_LAMBDA_FUNCTION_VERSION="$LATEST", RUST_LOG="warn")
    started = time.monotonic()
    proc = subprocess.Popen([str(binary)], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        init_done = api.wait_for_init()
        _, status, body, took = api.invoke(event)
        with open(f"/proc/{proc.pid}/status") as f:
            peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    finally:
        proc.kill()
        _, stderr = proc.communicate()
        api.close()
    if status != "response":
        sys.exit(f"{binary.name} failed: {body}\n{stderr.decode()[-2000:]}")
    return {"init_ms": (init_done - started) * 1000, "handle_ms": took * 1000,
            "peak_rss_mb": peak_kb / 1024, "response": body}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--chart-port", type=int, default=9877)
    args = parser.parse_args()
    bins = Path(args.bin_dir)
    postgres = os.environ.get("MDP_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    subprocess.run(["psql", postgres, "-q", "-c", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"], check=True)

    env = local_stack.up(postgres)
    sqs, s3 = local_stack.client("sqs"), local_stack.client("s3")
    for key in ("FETCH_QUEUE_URL", "TRANSFORM_QUEUE_URL", "LOAD_QUEUE_URL"):
        sqs.purge_queue(QueueUrl=env[key])
    listed = s3.list_objects_v2(Bucket=local_stack.BUCKET, Prefix="lake/")
    for obj in listed.get("Contents", []):
        s3.delete_object(Bucket=local_stack.BUCKET, Key=obj["Key"])

    mdp = next(p for p in (bins / "mdp", ROOT / "target" / "debug" / "mdp") if p.exists())
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
        rows = []
        results = {"validate": run_function(bins / "validate", env, {})}
        for name, queue in (("fetch", "FETCH_QUEUE_URL"), ("transform", "TRANSFORM_QUEUE_URL"), ("load", "LOAD_QUEUE_URL")):
            event, messages = sqs_event(sqs, env[queue])
            if not messages:
                sys.exit(f"no message for {name} in {env[queue]}")
            results[name] = run_function(bins / name, env, event)
            failures = json.loads(results[name]["response"]).get("batchItemFailures", [])
            if failures:
                sys.exit(f"{name} reported failures: {failures}")
            for m in messages:
                sqs.delete_message(QueueUrl=env[queue], ReceiptHandle=m["ReceiptHandle"])
        loaded = subprocess.run(["psql", postgres, "-At", "-c", f"select count(*) from {SCHEMA}.fact_market_data"],
                                capture_output=True, text=True, check=True).stdout.strip()
        print(f"{args.years}-year backfill of SYNTH, {loaded} rows loaded; host binaries from {bins}")
        print(f"{'function':<10} {'package':>12} {'cold start':>11} {'handle':>10} {'peak RSS':>10}")
        for name, r in results.items():
            zip_path = ROOT / "target" / "lambda" / name / "bootstrap.zip"
            size = f"{zip_path.stat().st_size / 1e6:.1f} MB" if zip_path.exists() else "-"
            print(f"{name:<10} {size:>12} {r['init_ms']:>8.1f} ms {r['handle_ms']:>7.1f} ms {r['peak_rss_mb']:>7.1f} MB")
            rows.append({"function": name, **{k: v for k, v in r.items() if k != "response"}})
        (local_stack.STATE / "measure.json").write_text(json.dumps(rows, indent=1))
    finally:
        chart.kill()
        subprocess.run(["psql", postgres, "-q", "-c", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"])
        local_stack.down()


if __name__ == "__main__":
    main()
