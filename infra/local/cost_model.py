"""What the deployed pipeline costs per 1,000 ticker-days, from the figures
`make measure-lambdas` measured (.local/measure.json): each function's
handling time, CPU time, cold start, log bytes and S3 requests on a 20-year
backfill of one ticker and on the next day's daily run of that ticker.

    python3 infra/local/cost_model.py [--measure .local/measure.json] [--tickers 500] [--memory-mb 128]

A ticker-day is one ticker on one trading day (one warehouse row): a daily
run of N tickers is N ticker-days, a 20-year backfill of one ticker about
5,000. Two scenarios, each as USD per 1,000 ticker-days:

- daily: one scheduled run of N tickers (--tickers), each bringing in one new
  session on top of its history. Per ticker one fetch, one transform and one
  load invocation (conservative: the FIFO queues' batches of up to 10 would
  need fewer), the validate invocation and the cold starts of the run shared
  by the N tickers (execution environments do not live from one day to the
  next: every run starts cold, one per concurrent environment).
- backfill: a 20-year backfill of one ticker, each function invoked once, cold.

Caveats, which the output repeats:

- Durations are measured on this machine (x86-64, unthrottled cores) with S3
  and SQS on loopback (moto), not on arm64 Lambda. At 128 MB Lambda gives a
  function about 128/1769 of a vCPU, so CPU-bound work takes longer there;
  the "128 MB CPU share" rows scale the measured CPU time by 1769/memory (an
  estimate, not a measurement). S3 and SQS in AWS answer in milliseconds to
  tens of milliseconds rather than the loopback's fraction of one.
- Prices are us-east-1 list prices written below as constants: assumptions
  to check against the AWS pricing pages, not fetched. Free tiers are ignored.
"""
import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# us-east-1 list prices (USD), as published on the AWS pricing pages for
# Lambda, SQS, S3, CloudWatch and X-Ray in 2025, written here from those
# pages without fetching them (this machine has no internet): assumptions,
# check them before relying on the result.
PRICES_AS_OF = "2025 (AWS public pricing pages, us-east-1; not re-fetched)"
LAMBDA_ARM64_PER_GB_SECOND = 0.0000133334   # first 7.5 billion GB-s a month
LAMBDA_PER_REQUEST = 0.20 / 1e6
SQS_STANDARD_PER_REQUEST = 0.40 / 1e6          # first 100 billion requests a month
SQS_FIFO_PER_REQUEST = 0.50 / 1e6              # first 100 billion requests a month
SQS_BILLING_CHUNK_BYTES = 64 * 1024            # every 64 KB of a payload is one request
S3_PUT_CLASS_PER_REQUEST = 0.005 / 1000        # PUT, COPY, POST, LIST
S3_GET_CLASS_PER_REQUEST = 0.0004 / 1000       # GET, HEAD and the rest (DELETE is free)
S3_STANDARD_PER_GB_MONTH = 0.023               # first 50 TB
CLOUDWATCH_LOGS_INGESTION_PER_GB = 0.50        # standard log class
CLOUDWATCH_CUSTOM_METRIC_PER_MONTH = 0.30      # first 10,000 metrics
XRAY_PER_TRACE_RECORDED = 5.00 / 1e6

# Modelling assumptions (not prices).
# Lambda's own records per invocation (platform.start, platform.runtimeDone,
# platform.report in the JSON log format), bytes.
LAMBDA_PLATFORM_LOG_BYTES_PER_INVOCATION = 700
# Memory that buys one full vCPU on Lambda (AWS documentation), MB.
LAMBDA_MB_PER_VCPU = 1769
# Idle polling of an SQS event source mapping: pollers per queue, each one
# long poll (20 s) after another, around the clock.
ESM_POLLERS_PER_QUEUE = 5
ESM_LONG_POLL_SECONDS = 20
# The template's event source mappings: MaximumConcurrency per function.
MAX_CONCURRENCY = {"validate": 1, "fetch": 5, "transform": 5, "load": 2}
GB = 1024 ** 3
DAYS_PER_MONTH = 30.4


def template_memory_mb():
    """The Default of FunctionMemorySize in template.yaml."""
    text = (ROOT / "template.yaml").read_text()
    m = re.search(r"\n  FunctionMemorySize:\n(?:    .*\n)*?    Default: (\d+)", text)
    return int(m.group(1)) if m else 128


def template_raw_retention_days():
    text = (ROOT / "template.yaml").read_text()
    m = re.search(r"\n  RawRetentionDays:\n(?:    .*\n)*?    Default: (\d+)", text)
    return int(m.group(1)) if m else 90


def billed_ms(ms):
    """Lambda bills duration in 1 ms steps."""
    return math.ceil(ms)


def throttled_ms(wall_ms, cpu_ms, memory_mb):
    """The measured time with its CPU part slowed to the function's CPU share."""
    share = min(1.0, memory_mb / LAMBDA_MB_PER_VCPU)
    return wall_ms + cpu_ms * (1 / share - 1)


def s3_cost(requests):
    put_class = sum(requests.get(k, 0) for k in ("PUT", "POST", "LIST", "COPY"))
    get_class = sum(requests.get(k, 0) for k in ("GET", "HEAD"))
    return put_class * S3_PUT_CLASS_PER_REQUEST + get_class * S3_GET_CLASS_PER_REQUEST


def scenario_cost(functions, invocations, cold_starts, sqs_standard, sqs_fifo, memory_mb):
    """USD of one run, by component. `invocations` and `cold_starts` per
    function; `functions` the measured figures of one invocation of each on
    one ticker (an invocation of validate over N tickers counts as N of them
    for its handling time and S3 requests, as it reads each ticker's state)."""
    gb = memory_mb / 1024
    cost = {k: 0.0 for k in ("compute_measured", "compute_cpu_share", "requests", "sqs", "s3", "logs", "xray")}
    for name, f in functions.items():
        n, cold, work = invocations[name], cold_starts[name], invocations.get(f"{name}_work", invocations[name])
        handle = billed_ms(f["handle_ms"]) * work
        handle_share = billed_ms(throttled_ms(f["handle_ms"], f["handle_cpu_ms"], memory_mb)) * work
        init = billed_ms(f["init_ms"]) * cold
        init_share = billed_ms(throttled_ms(f["init_ms"], f["init_cpu_ms"], memory_mb)) * cold
        cost["compute_measured"] += (handle + init) / 1000 * gb * LAMBDA_ARM64_PER_GB_SECOND
        cost["compute_cpu_share"] += (handle_share + init_share) / 1000 * gb * LAMBDA_ARM64_PER_GB_SECOND
        cost["requests"] += n * LAMBDA_PER_REQUEST
        cost["s3"] += s3_cost(f["s3_requests"]) * work
        log_bytes = f["log_bytes"] * work + LAMBDA_PLATFORM_LOG_BYTES_PER_INVOCATION * n
        cost["logs"] += log_bytes / GB * CLOUDWATCH_LOGS_INGESTION_PER_GB
        cost["xray"] += n * XRAY_PER_TRACE_RECORDED
    cost["sqs"] = sqs_standard * SQS_STANDARD_PER_REQUEST + sqs_fifo * SQS_FIFO_PER_REQUEST
    return cost


def sqs_requests_per_message(batch):
    """Requests of one message through a queue: its send (1, or 1/10 when
    sent in batches of 10), the mapping's ReceiveMessage and DeleteMessageBatch
    (1 each per batch of `batch` records). Messages are claim checks, far
    under 64 KB: one billing chunk each."""
    return 1 / batch + 1 / batch


def daily(functions, n, memory_mb):
    invocations = {"validate": 1, "validate_work": n, "fetch": n, "transform": n, "load": n}
    cold = {name: min(MAX_CONCURRENCY[name], n) for name in MAX_CONCURRENCY}
    # fetch queue (standard): validate sends in batches of 10; transform and
    # load queues (FIFO): one send per message; the mapping receives and
    # deletes per batch (fetch: BatchSize 1; FIFO: 1 per record, conservatively).
    standard = n * (0.1 + sqs_requests_per_message(1))
    fifo = 2 * n * (1 + sqs_requests_per_message(1))
    return scenario_cost(functions, invocations, cold, standard, fifo, memory_mb)


def backfill(functions, memory_mb):
    one = {name: 1 for name in MAX_CONCURRENCY}
    standard = 1 + sqs_requests_per_message(1)
    fifo = 2 * (1 + sqs_requests_per_message(1))
    return scenario_cost(functions, one, one, standard, fifo, memory_mb)


def fixed_monthly(measured):
    """Costs that do not depend on the ticker-days: custom metrics and the
    mappings' idle polling of the three queues."""
    metrics = set()
    for scenario in ("backfill", "daily"):
        for f in measured[scenario]["functions"].values():
            metrics.update(tuple(m) for m in f.get("emf_metrics", []))
    polls = ESM_POLLERS_PER_QUEUE * 86400 / ESM_LONG_POLL_SECONDS * DAYS_PER_MONTH
    return {
        "custom_metrics": (len(metrics), len(metrics) * CLOUDWATCH_CUSTOM_METRIC_PER_MONTH),
        "esm_idle_polling": (3 * polls, polls * SQS_STANDARD_PER_REQUEST + 2 * polls * SQS_FIFO_PER_REQUEST),
    }


def usd(x):
    """Dollars to three significant digits, without exponent."""
    if x <= 0:
        return "$0"
    decimals = max(2, 2 - math.floor(math.log10(x)))
    return f"${x:.{decimals}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", default=str(ROOT / ".local" / "measure.json"))
    parser.add_argument("--tickers", type=int, default=500, help="tickers of the daily run (default 500)")
    parser.add_argument("--memory-mb", type=int, default=None, help="function memory (default: template.yaml)")
    parser.add_argument("--json", action="store_true", help="print the model as JSON")
    args = parser.parse_args()
    path = Path(args.measure)
    if not path.exists():
        sys.exit(f"{path} not found: run `make measure-lambdas` first")
    measured = json.loads(path.read_text())
    if "backfill" not in measured:
        sys.exit(f"{path} is of an older measure_lambdas.py: run `make measure-lambdas` again")
    memory_mb = args.memory_mb or template_memory_mb()
    n = args.tickers
    back_rows = measured["backfill"]["rows"]
    day = daily(measured["daily"]["functions"], n, memory_mb)
    back = backfill(measured["backfill"]["functions"], memory_mb)
    per_k_daily = {k: v / n * 1000 for k, v in day.items()}
    per_k_back = {k: v / back_rows * 1000 for k, v in back.items()}
    lake = measured["backfill"]["lake_bytes"]
    raw_days = template_raw_retention_days()
    storage = {
        "curated_and_state_per_month": (lake.get("curated", 0) + lake.get("state", 0)) / back_rows * 1000 / 1e9
        * S3_STANDARD_PER_GB_MONTH,
        "raw_kept_retention": lake.get("raw", 0) / back_rows * 1000 / 1e9 * S3_STANDARD_PER_GB_MONTH
        * raw_days / DAYS_PER_MONTH,
    }
    fixed = fixed_monthly(measured)
    if args.json:
        print(json.dumps({"memory_mb": memory_mb, "tickers": n, "daily_per_1000": per_k_daily,
                          "backfill_per_1000": per_k_back, "storage_per_1000": storage,
                          "fixed_monthly": fixed, "prices_as_of": PRICES_AS_OF}, indent=1))
        return

    print(f"Measured {measured.get('measured_at', '?')} on {measured.get('host', '?')} (not arm64): "
          f"{measured['years']}-year backfill of one ticker ({back_rows} rows) and its next daily run.")
    print(f"Functions at {memory_mb} MB; prices: {PRICES_AS_OF}; free tiers ignored.\n")
    print("| function | scenario | handling, measured | of it CPU | est. at 128 MB CPU share | cold start | peak RSS | S3 requests | log bytes |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for scenario in ("backfill", "daily"):
        for name, f in measured[scenario]["functions"].items():
            s3 = ", ".join(f"{v} {k}" for k, v in sorted(f["s3_requests"].items())) or "-"
            print(f"| {name} | {scenario} | {f['handle_ms']:.1f} ms | {f['handle_cpu_ms']:.1f} ms | "
                  f"{throttled_ms(f['handle_ms'], f['handle_cpu_ms'], memory_mb):.0f} ms | {f['init_ms']:.1f} ms | "
                  f"{f['peak_rss_mb']:.1f} MB | {s3} | {f['log_bytes']} |")
    print()
    print(f"| USD per 1,000 ticker-days | daily run of {n} tickers | 20-year backfill |")
    print("| --- | ---: | ---: |")
    rows = [
        ("Lambda compute (arm64 price, x86-64 durations as measured)", "compute_measured"),
        (f"Lambda compute (CPU time scaled to the {memory_mb} MB CPU share, estimate)", "compute_cpu_share"),
        ("Lambda requests", "requests"),
        ("SQS requests (send, receive, delete)", "sqs"),
        ("S3 requests", "s3"),
        ("CloudWatch Logs ingestion", "logs"),
        ("X-Ray traces (Tracing: Active; upper bound, every invocation)", "xray"),
    ]
    for label, key in rows:
        print(f"| {label} | {usd(per_k_daily[key])} | {usd(per_k_back[key])} |")
    for label, compute in (("as measured", "compute_measured"), ("CPU share", "compute_cpu_share")):
        other = ("compute_measured", "compute_cpu_share")
        total_d = sum(v for k, v in per_k_daily.items() if k not in other) + per_k_daily[compute]
        total_b = sum(v for k, v in per_k_back.items() if k not in other) + per_k_back[compute]
        print(f"| **total, compute {label}** | **{usd(total_d)}** | **{usd(total_b)}** |")
    print()
    print(f"S3 storage per 1,000 ticker-days kept: curated Parquet and state {usd(storage['curated_and_state_per_month'])} "
          f"a month; raw responses {usd(storage['raw_kept_retention'])} once (kept {raw_days} days).")
    count, cost = fixed["custom_metrics"]
    polls, poll_cost = fixed["esm_idle_polling"]
    print(f"Fixed a month, whatever the volume: {count} custom metrics from the EMF documents "
          f"({usd(cost)}); the mappings' idle long polling of the 3 queues, ~{polls / 1e6:.1f} M receives "
          f"(~{usd(poll_cost)}, assumption: {ESM_POLLERS_PER_QUEUE} pollers per queue, {ESM_LONG_POLL_SECONDS} s polls).")


if __name__ == "__main__":
    main()
