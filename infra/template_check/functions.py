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

from .cfn import NO_VALUE, Context, Unresolvable, check, referenced, resolve
from .expected import FUNCTIONS, MAX_RECEIVES, QUEUES
from .observability import is_freshness, is_report, schedule_dead_letter_queues

FETCH_DEFAULT_CONCURRENCY = 5
SQS_MAX_VISIBILITY = 43200
SQS_MAX_QUEUE_NAME = 80
FIFO_MAX_BATCH = 10
DLQ_RETENTION = 14 * 24 * 3600
# The queue URLs every function gets (from Globals); FUNCTIONS adds per
# function the ones it must have whatever Globals says.
QUEUE_ENV = {
    "FETCH_QUEUE_URL": "FetchQueue",
    "TRANSFORM_QUEUE_URL": "TransformQueue",
    "LOAD_QUEUE_URL": "LoadQueue",
    "FETCH_DLQ_URL": "FetchDLQ",
    "TRANSFORM_DLQ_URL": "TransformDLQ",
    "LOAD_DLQ_URL": "LoadDLQ",
}

COMMON_ENV = {
    "MARKET_DATA_LAKE_URI": "s3://<LakeBucket>/lake",
    "MDP_LOG_FORMAT": "json",
    "RUST_LOG": "info",
    "MARKET_DATA_DEFAULT_TICKERS": "AAPL",
    "MARKET_DATA_BACKFILL_DAYS": "120",
    **{var: f"<{queue}>" for var, queue in QUEUE_ENV.items()},
}
# The optional settings: parameter values -> the variables they must give
# (None: the variable is unset), and Layers of LoadFunction.
RDS_BUNDLE = "/opt/certs/global-bundle.pem"
LAYER = "arn:aws:lambda:us-east-1:123456789012:layer:mdp-rds-ca:3"
OPTIONAL_SETTINGS = [
    # (function, parameter values, expected variables, expected Layers)
    ("FetchFunction", {}, {"MARKET_DATA_API_RATE": None, "MARKET_DATA_API_CONCURRENCY": "1"}, None),
    ("FetchFunction", {"FetchApiRate": "0.5"}, {"MARKET_DATA_API_RATE": "0.5", "MARKET_DATA_API_CONCURRENCY": "1"}, None),
    ("LoadFunction", {}, {"WAREHOUSE_SSL_ROOT_CERT": None}, None),
    ("LoadFunction", {"WarehouseSslRootCert": "/opt/ca/rds.pem"}, {"WAREHOUSE_SSL_ROOT_CERT": "/opt/ca/rds.pem"}, None),
    ("LoadFunction", {"WarehouseCaBundleLayerArn": LAYER}, {"WAREHOUSE_SSL_ROOT_CERT": RDS_BUNDLE}, [LAYER]),
    (
        "LoadFunction",
        {"WarehouseCaBundleLayerArn": LAYER, "WarehouseSslRootCert": "/opt/other.pem"},
        {"WAREHOUSE_SSL_ROOT_CERT": "/opt/other.pem"},
        [LAYER],
    ),
]
# Values each optional parameter's AllowedPattern must accept (True) or refuse.
PARAMETER_VALUES = {
    "FetchApiRate": [
        ("", True), ("0.5", True), ("2", True), ("0.0001", True), ("1000", True), ("999.9999", True),
        ("0", False), ("0.0", False), ("0.00001", False), ("1001", False), ("-1", False), ("1e3", False), ("fast", False),
    ],
    "WarehouseSslRootCert": [
        ("", True), (RDS_BUNDLE, True), ("/var/task/ca.pem", True),
        ("global-bundle.pem", False), ("/opt/a b.pem", False),
    ],
    "WarehouseCaBundleLayerArn": [
        ("", True), (LAYER, True),
        ("arn:aws:lambda:us-east-1:123456789012:layer:mdp-rds-ca", False), ("mdp-rds-ca:3", False),
    ],
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
    "ReportFunctionArn": "<ReportFunction.Arn>",
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

        try:
            env = ctx.resolve((p.get("Environment") or {}).get("Variables") or {})
        except Unresolvable as e:
            check(False, f"{name}: environment not understood ({e})")
            continue
        expected = dict(COMMON_ENV, **spec["env"])
        for var, value in expected.items():
            check(str(env.get(var)) == value, f"{name}: {var} is {env.get(var)!r}, expected {value!r}")
        for var in spec["unset"]:
            check(var not in env, f"{name}: {var} is set ({env.get(var)!r}) with the default parameters; it must be left unset")
        for var in env:
            check(
                var not in ("WAREHOUSE_URL", "DATABASE_URL") and "PASSWORD" not in var,
                f"{name}: {var} would put the warehouse connection in plain text; use WAREHOUSE_SECRET_ARN",
            )
        if not spec["secret"]:
            check("WAREHOUSE_SECRET_ARN" not in env, f"{name}: has WAREHOUSE_SECRET_ARN but only LoadFunction reads the secret")
        if name != "LoadFunction":
            check("Layers" not in p, f"{name}: has Layers; only LoadFunction takes the warehouse CA bundle layer")


def check_optional_settings(ctx: Context) -> None:
    """The optional parameters (FetchApiRate, WarehouseSslRootCert,
    WarehouseCaBundleLayerArn) set their variable only when given, and their
    AllowedPattern accepts what the functions accept."""
    res, sam = ctx.res, ctx.sam
    for name, values, variables, layers in OPTIONAL_SETTINGS:
        if name not in res:
            continue
        p = res[name]["Properties"]
        params = dict(ctx.params, **values)
        label = ", ".join(f"{k}={v!r}" for k, v in values.items()) or "the defaults"
        try:
            env = ctx.resolve((p.get("Environment") or {}).get("Variables") or {}, params)
            got_layers = ctx.resolve(p.get("Layers"), params) if "Layers" in p else None
            got_layers = None if got_layers is NO_VALUE else got_layers
        except Unresolvable as e:
            check(False, f"{name}: environment or Layers not understood with {label} ({e})")
            continue
        for var, value in variables.items():
            if value is None:
                check(var not in env, f"{name}: with {label}, {var} is {env.get(var)!r}; it must be unset")
            else:
                check(env.get(var) == value, f"{name}: with {label}, {var} is {env.get(var)!r}, expected {value!r}")
        check(
            (got_layers or None) == layers,
            f"{name}: with {label}, Layers is {got_layers!r}, expected {layers!r}",
        )
    declared = sam.get("Parameters") or {}
    for param, cases in PARAMETER_VALUES.items():
        if not check(param in declared, f"Parameters: no {param}"):
            continue
        check(declared[param].get("Default") == "", f"Parameters: {param} must default to empty (unset)")
        pattern = declared[param].get("AllowedPattern", ".*")
        for value, good in cases:
            check(
                bool(re.fullmatch(pattern, value)) == good,
                f"Parameters: {param} AllowedPattern {'rejects' if good else 'accepts'} {value!r}",
            )


def queue_name(ctx: Context, props: dict) -> str | None:
    """The queue's name for a stack named "mdp", or None when CloudFormation
    generates it."""
    if "QueueName" not in props:
        return None
    try:
        return str(ctx.resolve(props["QueueName"]))
    except Unresolvable:
        return "<unresolvable>"


def check_queue_type(ctx: Context, name: str, q: dict, fifo: bool, role: str) -> None:
    """A FIFO queue: FifoQueue true, ContentBasedDeduplication true (the
    functions send no deduplication id) and a name ending in .fifo (so its
    URL does: the functions send a MessageGroupId to a URL ending in .fifo).
    A standard queue: none of these."""
    qname = queue_name(ctx, q)
    if fifo:
        check(q.get("FifoQueue") is True, f"{name}: FifoQueue is {q.get('FifoQueue')!r}; the {role} must be a FIFO queue")
        check(
            q.get("ContentBasedDeduplication") is True,
            f"{name}: ContentBasedDeduplication is {q.get('ContentBasedDeduplication')!r}; messages are sent without a deduplication id",
        )
        if check(qname is not None, f"{name}: no QueueName; a FIFO queue's name (and URL) must end in .fifo"):
            check(qname.endswith(".fifo"), f"{name}: QueueName {qname!r} does not end in .fifo")
            check(
                len(qname) <= SQS_MAX_QUEUE_NAME,
                f"{name}: QueueName {qname!r} is longer than {SQS_MAX_QUEUE_NAME} characters",
            )
        check(
            q.get("DeduplicationScope", "queue") == "queue" and q.get("FifoThroughputLimit", "perQueue") == "perQueue",
            f"{name}: DeduplicationScope/FifoThroughputLimit other than the defaults (queue, perQueue)",
        )
    else:
        check(q.get("FifoQueue") in (None, False), f"{name}: FifoQueue is {q.get('FifoQueue')!r}; the {role} is a standard queue")
        check("ContentBasedDeduplication" not in q, f"{name}: ContentBasedDeduplication on a standard queue")
        check(not (qname or "").endswith(".fifo"), f"{name}: QueueName {qname!r} ends in .fifo but the queue is standard")


def check_queues_and_mappings(ctx: Context) -> None:
    res, params = ctx.res, ctx.params
    queues = {k: v.get("Properties") or {} for k, v in res.items() if v["Type"] == "AWS::SQS::Queue"}
    esms = [v["Properties"] for v in res.values() if v["Type"] == "AWS::Lambda::EventSourceMapping"]
    consumers = {name: spec["source"] for name, spec in FUNCTIONS.items() if spec["source"]}
    check(len(esms) == len(consumers), f"{len(esms)} event source mappings, expected {len(consumers)}")
    check(set(consumers.values()) == set(QUEUES), f"expected.QUEUES {sorted(QUEUES)} are not the consumed queues {sorted(consumers.values())}")
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
        fifo = QUEUES[queue]["fifo"]
        check(
            esm.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
            f"{fn}: FunctionResponseTypes {esm.get('FunctionResponseTypes')!r}, expected ['ReportBatchItemFailures']",
        )
        batch = esm.get("BatchSize", 10)
        window = esm.get("MaximumBatchingWindowInSeconds", 0)
        if fifo:
            check(
                isinstance(batch, int) and 1 <= batch <= FIFO_MAX_BATCH,
                f"{fn}: BatchSize {batch!r}; {queue} is FIFO (at most {FIFO_MAX_BATCH})",
            )
            check(
                "MaximumBatchingWindowInSeconds" not in esm,
                f"{fn}: MaximumBatchingWindowInSeconds on the FIFO queue {queue} (Lambda refuses it for FIFO)",
            )
        else:
            check(
                isinstance(batch, int) and 1 <= batch <= 10 or window,
                f"{fn}: BatchSize {batch!r} above 10 needs MaximumBatchingWindowInSeconds",
            )
        want_batch = FUNCTIONS[fn]["batch"]
        check(
            want_batch is None or batch == want_batch,
            f"{fn}: BatchSize {batch!r}, expected {want_batch}"
            + (" (records are handled one at a time: a batch of several could outlast the timeout)" if want_batch == 1 else ""),
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
                declared = (ctx.sam.get("Parameters") or {}).get("FetchMaxConcurrency") or {}
                check(
                    declared.get("MinValue") == 2 and declared.get("MaxValue") == 1000,
                    "Parameters: FetchMaxConcurrency must allow 2..1000 (what SQS mappings allow)",
                )

        q = queues.get(queue, {})
        check_queue_type(ctx, queue, q, fifo, f"queue of {fn}")
        timeout = res[fn]["Properties"].get("Timeout", 3)
        vis = q.get("VisibilityTimeout", 30)
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
            check(receives == MAX_RECEIVES, f"{queue}: maxReceiveCount {receives!r}, expected {MAX_RECEIVES}")
            d = queues[dlq]
            check_queue_type(ctx, dlq, d, fifo, f"dead-letter queue of {queue}")
            check(d.get("MessageRetentionPeriod") == DLQ_RETENTION, f"{dlq}: MessageRetentionPeriod {d.get('MessageRetentionPeriod')}, expected 14 days")
            check(
                d.get("MessageRetentionPeriod", 345600) > q.get("MessageRetentionPeriod", 345600),
                f"{dlq}: must keep messages longer than {queue} (SQS keeps the original enqueue time)",
            )
            check("RedrivePolicy" not in d, f"{dlq}: a dead-letter queue must not redrive further")
    check(seen == set(consumers), f"functions with an SQS event: {sorted(seen)}, expected {sorted(consumers)}")
    # The schedules' dead-letter queues (checked in operations).
    dlqs |= set(schedule_dead_letter_queues(res).values())
    names = {}
    for name, q in queues.items():
        check(name in dlqs or name in consumers.values(), f"{name}: neither consumed by a function nor a dead-letter queue")
        check(q.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in q, f"{name}: not encrypted at rest")
        qname = queue_name(ctx, q)
        if qname:
            check(qname not in names, f"{name}: QueueName {qname!r} is also {names.get(qname)}'s")
            names[qname] = name
    # Every queue URL a function gets names a queue of the expected type: the
    # functions group messages by ticker exactly when the URL ends in .fifo.
    for fn, spec in FUNCTIONS.items():
        if fn not in res:
            continue
        try:
            env = ctx.resolve((res[fn]["Properties"].get("Environment") or {}).get("Variables") or {})
        except Unresolvable:
            continue  # reported by check_functions
        for var, value in env.items():
            if not re.fullmatch(r"[A-Z]+_(QUEUE|DLQ)_URL", var):
                continue
            queue = str(value)[1:-1] if str(value).startswith("<") else None
            stage = QUEUE_ENV.get(var, "").replace("DLQ", "Queue")
            if not check(queue in queues and queue == QUEUE_ENV.get(var), f"{fn}: {var} is {value!r}, not the URL of {QUEUE_ENV.get(var, 'a queue of this stack')}"):
                continue
            if stage in QUEUES:
                url_fifo = (queue_name(ctx, queues[queue]) or "").endswith(".fifo")
                check(
                    url_fifo == QUEUES[stage]["fifo"],
                    f"{fn}: {var} ends in .fifo: {url_fifo}, expected {QUEUES[stage]['fifo']} ({queue} is {'FIFO' if QUEUES[stage]['fifo'] else 'standard'})",
                )


def check_schedule(ctx: Context) -> None:
    """Sets ctx.schedule to the schedule's logical id (check_outputs needs it)."""
    res, params, sam = ctx.res, ctx.params, ctx.sam
    # The daily run's; the freshness check's and the report's schedules are
    # checked in operations.
    schedules = {
        k: v["Properties"]
        for k, v in res.items()
        if v["Type"] == "AWS::Scheduler::Schedule"
        and not is_freshness(v["Properties"])
        and not is_report(v["Properties"])
    }
    if not check(len(schedules) == 1, f"{len(schedules)} AWS::Scheduler::Schedule of the daily run, expected 1"):
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
