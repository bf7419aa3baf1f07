"""Checks of the compute and messaging side of the stack: the four functions
(runtime, architecture, handler, timeout, tracing, build metadata,
environment), their SQS queues, dead-letter queues and event source mappings,
the daily schedule and its input, and the stack outputs naming them all.

These are what cfn-lint cannot know: the values DESIGN.md chose for this
pipeline, read on the translated CloudFormation (what SAM will deploy).
"""

from __future__ import annotations

import json
import re

from .cfn import Context, Unresolvable, check, referenced, resolve
from .expected import FUNCTIONS

FETCH_DEFAULT_CONCURRENCY = 5
SQS_MAX_VISIBILITY = 43200
DLQ_RETENTION = 14 * 24 * 3600

COMMON_ENV = {
    "MARKET_DATA_LAKE_URI": "s3://<LakeBucket>/lake",
    "MDP_LOG_FORMAT": "json",
    "RUST_LOG": "info",
    "MARKET_DATA_DEFAULT_TICKERS": "AAPL",
    "MARKET_DATA_BACKFILL_DAYS": "120",
    "FETCH_QUEUE_URL": "<FetchQueue>",
    "TRANSFORM_QUEUE_URL": "<TransformQueue>",
    "LOAD_QUEUE_URL": "<LoadQueue>",
    "FETCH_DLQ_URL": "<FetchDLQ>",
    "TRANSFORM_DLQ_URL": "<TransformDLQ>",
    "LOAD_DLQ_URL": "<LoadDLQ>",
}
LOAD_ENV = {
    "WAREHOUSE_LOAD_STRATEGY": "upsert",
    "WAREHOUSE_BATCH_SIZE": "1000",
    "WAREHOUSE_SECRET_ARN": "<WarehouseSecretArn>",
}
REQUIRED_OUTPUTS = {
    "LakeBucketName": "<LakeBucket>",
    "FetchQueueUrl": "<FetchQueue>",
    "TransformQueueUrl": "<TransformQueue>",
    "LoadQueueUrl": "<LoadQueue>",
    "FetchDLQUrl": "<FetchDLQ>",
    "TransformDLQUrl": "<TransformDLQ>",
    "LoadDLQUrl": "<LoadDLQ>",
    "ValidateFunctionArn": "<ValidateFunction.Arn>",
    "FetchFunctionArn": "<FetchFunction.Arn>",
    "TransformFunctionArn": "<TransformFunction.Arn>",
    "LoadFunctionArn": "<LoadFunction.Arn>",
    "ScheduleName": None,  # checked against the generated schedule (check_outputs)
}


def check_functions(ctx: Context) -> None:
    res, params = ctx.res, ctx.params
    lambdas = {k: v for k, v in res.items() if v["Type"] == "AWS::Lambda::Function"}
    check(set(lambdas) == set(FUNCTIONS), f"functions are {sorted(lambdas)}, expected {sorted(FUNCTIONS)}")
    for name, spec in FUNCTIONS.items():
        fn = lambdas.get(name)
        if not fn:
            continue
        p = fn["Properties"]
        check(p.get("Runtime") == "provided.al2023", f"{name}: Runtime {p.get('Runtime')!r}, expected provided.al2023")
        check(p.get("Architectures") == ["arm64"], f"{name}: Architectures {p.get('Architectures')!r}, expected ['arm64']")
        check(p.get("Handler") == "bootstrap", f"{name}: Handler {p.get('Handler')!r}, expected bootstrap")
        check(p.get("Timeout") == spec["timeout"], f"{name}: Timeout {p.get('Timeout')!r}, expected {spec['timeout']}")
        check(str(resolve(p.get("MemorySize"), params)) == "128", f"{name}: default MemorySize is not 128 MB")
        check(p.get("TracingConfig", {}).get("Mode") == "Active", f"{name}: X-Ray tracing is not Active")
        meta = fn.get("Metadata") or {}
        check(meta.get("BuildMethod") == "rust-cargolambda", f"{name}: Metadata.BuildMethod is not rust-cargolambda")
        check(
            (meta.get("BuildProperties") or {}).get("Binary") == spec["binary"],
            f"{name}: Metadata.BuildProperties.Binary is not {spec['binary']!r}",
        )

        env = resolve((p.get("Environment") or {}).get("Variables") or {}, params)
        expected = dict(COMMON_ENV, **(LOAD_ENV if spec["secret"] else {}))
        for var, value in expected.items():
            check(str(env.get(var)) == value, f"{name}: {var} is {env.get(var)!r}, expected {value!r}")
        for var in env:
            check(
                var not in ("WAREHOUSE_URL", "DATABASE_URL") and "PASSWORD" not in var,
                f"{name}: {var} would put the warehouse connection in plain text; use WAREHOUSE_SECRET_ARN",
            )
        if not spec["secret"]:
            check("WAREHOUSE_SECRET_ARN" not in env, f"{name}: has WAREHOUSE_SECRET_ARN but only LoadFunction reads the secret")


def check_queues_and_mappings(ctx: Context) -> None:
    res, params = ctx.res, ctx.params
    queues = {k: v.get("Properties") or {} for k, v in res.items() if v["Type"] == "AWS::SQS::Queue"}
    esms = [v["Properties"] for v in res.values() if v["Type"] == "AWS::Lambda::EventSourceMapping"]
    consumers = {name: spec["source"] for name, spec in FUNCTIONS.items() if spec["source"]}
    check(len(esms) == len(consumers), f"{len(esms)} event source mappings, expected {len(consumers)}")
    seen = set()
    dlqs = set()
    for esm in esms:
        fn = resolve(esm.get("FunctionName"), params)
        fn = fn[1:-1] if isinstance(fn, str) and fn.startswith("<") else fn
        src = sorted(referenced(esm.get("EventSourceArn")))
        queue = src[0] if len(src) == 1 else None
        seen.add(fn)
        if not check(fn in consumers and consumers[fn] == queue, f"event source mapping {queue} -> {fn} is not one of {consumers}"):
            continue
        check(
            esm.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
            f"{fn}: FunctionResponseTypes {esm.get('FunctionResponseTypes')!r}, expected ['ReportBatchItemFailures']",
        )
        batch = esm.get("BatchSize", 10)
        check(
            isinstance(batch, int) and 1 <= batch <= 10 or esm.get("MaximumBatchingWindowInSeconds"),
            f"{fn}: BatchSize {batch!r} above 10 needs MaximumBatchingWindowInSeconds",
        )
        conc = resolve((esm.get("ScalingConfig") or {}).get("MaximumConcurrency"), params)
        if check(conc is not None, f"{fn}: no ScalingConfig.MaximumConcurrency"):
            conc = int(conc)
            check(2 <= conc <= 1000, f"{fn}: MaximumConcurrency {conc} outside 2..1000")
            if fn == "FetchFunction":
                check(conc == FETCH_DEFAULT_CONCURRENCY, f"FetchFunction: default MaximumConcurrency {conc}, expected {FETCH_DEFAULT_CONCURRENCY}")
                check(
                    referenced(esm["ScalingConfig"]["MaximumConcurrency"]) == {"FetchMaxConcurrency"},
                    "FetchFunction: MaximumConcurrency does not come from the FetchMaxConcurrency parameter",
                )

        q = queues.get(queue, {})
        timeout = res[fn]["Properties"].get("Timeout", 3)
        vis = q.get("VisibilityTimeout", 30)
        window = esm.get("MaximumBatchingWindowInSeconds", 0)
        check(
            isinstance(vis, int) and vis >= 6 * timeout + window,
            f"{queue}: VisibilityTimeout {vis} < 6 x {fn} Timeout {timeout}" + (f" + batching window {window}" if window else ""),
        )
        check(isinstance(vis, int) and vis <= SQS_MAX_VISIBILITY, f"{queue}: VisibilityTimeout {vis} above the SQS maximum {SQS_MAX_VISIBILITY}")
        redrive = q.get("RedrivePolicy") or {}
        target = sorted(referenced(redrive.get("deadLetterTargetArn")))
        dlq = target[0] if len(target) == 1 else None
        expected_dlq = queue.replace("Queue", "DLQ")
        if check(dlq == expected_dlq and dlq in queues, f"{queue}: RedrivePolicy does not send to {expected_dlq}"):
            dlqs.add(dlq)
            receives = redrive.get("maxReceiveCount")
            check(isinstance(receives, int) and 2 <= receives <= 1000, f"{queue}: maxReceiveCount {receives!r} outside 2..1000")
            d = queues[dlq]
            check(d.get("MessageRetentionPeriod") == DLQ_RETENTION, f"{dlq}: MessageRetentionPeriod {d.get('MessageRetentionPeriod')}, expected 14 days")
            check(
                d.get("MessageRetentionPeriod", 345600) > q.get("MessageRetentionPeriod", 345600),
                f"{dlq}: must keep messages longer than {queue} (SQS keeps the original enqueue time)",
            )
            check("RedrivePolicy" not in d, f"{dlq}: a dead-letter queue must not redrive further")
    check(seen == set(consumers), f"functions with an SQS event: {sorted(seen)}, expected {sorted(consumers)}")
    for name, q in queues.items():
        check(name in dlqs or name in consumers.values(), f"{name}: neither consumed by a function nor a dead-letter queue")
        check(q.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in q, f"{name}: not encrypted at rest")


def check_schedule(ctx: Context) -> None:
    """Sets ctx.schedule to the schedule's logical id (check_outputs needs it)."""
    res, params, sam = ctx.res, ctx.params, ctx.sam
    schedules = {k: v["Properties"] for k, v in res.items() if v["Type"] == "AWS::Scheduler::Schedule"}
    if not check(len(schedules) == 1, f"{len(schedules)} AWS::Scheduler::Schedule, expected 1"):
        return
    (name, s), = schedules.items()
    ctx.schedule = name
    target = s.get("Target") or {}
    check(referenced(target.get("Arn")) == {"ValidateFunction"}, f"{name}: target is not ValidateFunction")
    tz = resolve(s.get("ScheduleExpressionTimezone"), params)
    check(tz == "America/New_York", f"{name}: default time zone {tz!r}, expected America/New_York")
    expr = str(resolve(s.get("ScheduleExpression"), params))
    m = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)", expr)
    check(
        m and m.group(1) == "0" and m.group(2) == "18" and m.group(3) == "?" and m.group(5).upper() in ("MON-FRI", "2-6"),
        f"{name}: default expression {expr!r} is not 18:00 on weekdays",
    )
    check(resolve(s.get("State", "ENABLED"), params) == "ENABLED", f"{name}: disabled by default")
    check((s.get("FlexibleTimeWindow") or {}).get("Mode") == "OFF", f"{name}: FlexibleTimeWindow is not OFF")

    # The input is the section 3 schedule event, for the default tickers and
    # for any value the Tickers parameter's AllowedPattern lets through.
    pattern = sam["Parameters"]["Tickers"].get("AllowedPattern", ".*")
    for value, good in [
        ("AAPL", True), ("AAPL,MSFT", True), ("aapl, msft ,^GSPC,EURUSD=X,BRK-B,ES=F", True),
        ("", False), ('AAPL"', False), ("AAPL,,MSFT", False), ("AAPL\\", False), ("ABCDEFGHIJKLM", False),
    ]:
        check(bool(re.fullmatch(pattern, value)) == good, f"Tickers AllowedPattern {'rejects' if good else 'accepts'} {value!r}")
        if not good:
            continue
        try:
            event = json.loads(resolve(target.get("Input"), dict(params, Tickers=value)))
        except (json.JSONDecodeError, TypeError, Unresolvable) as e:
            check(False, f"{name}: Input for Tickers={value!r} is not JSON: {e}")
            continue
        expected = [t.strip() for t in value.split(",")]
        check(
            isinstance(event, dict) and [str(t).strip() for t in event.get("tickers", [])] == expected,
            f"{name}: Input for Tickers={value!r} is {event!r}, expected tickers {expected}",
        )


def check_outputs(ctx: Context) -> None:
    """Runs after check_schedule: the ScheduleName output must name it."""
    cfn, params, schedule = ctx.cfn, ctx.params, ctx.schedule
    outputs = cfn.get("Outputs") or {}
    for key, value in REQUIRED_OUTPUTS.items():
        if not check(key in outputs, f"Outputs: no {key}"):
            continue
        got = resolve(outputs[key].get("Value"), params)
        if value is None:
            check(schedule and got == f"<{schedule}>", f"Outputs: {key} is {got!r}, expected the name of {schedule}")
        else:
            check(got == value, f"Outputs: {key} is {got!r}, expected {value!r}")
