"""What the template must declare for each function and queue, shared by
every module.

One table per kind, so a function or queue added to the pipeline is described
once: a function's crate and binary, timeout, the queue it consumes, its
environment, and exactly what its IAM role may reach; a queue's type. The
functions, security and files checks all read them.
"""

from __future__ import annotations

import re
from typing import Any

from .cfn import ROOT

# The lake is s3://BUCKET/lake: every S3 grant is under this key prefix.
LAKE_PREFIX = "lake"

# ------------------------------------------------------------ the lake's columns
# The curated zone (DESIGN.md section 4) as the Glue table must describe it.
# The column list is derived from ONE place: the Postgres DDL below, whose
# column names, order and types the Rust test
# mdp_warehouse::ddl::tests::every_ddl_follows_the_schema checks against
# shared/core/src/schema.rs (the 32 columns of DESIGN.md section 6). The files
# hold all of them but the partition keys; these are in the path instead.
FACT_TABLE_DDL = ROOT / "infra" / "warehouse" / "postgres" / "001_create_fact_market_data.sql"
# The partition keys, in path order (ticker=<encoded>/year=YYYY/), with their
# Glue types: ticker is a column of section 6, year is the path's only.
LAKE_PARTITION_KEYS: list[tuple[str, str]] = [("ticker", "string"), ("year", "int")]
# The Glue (Hive) type of each Postgres type of the DDL.
POSTGRES_TO_GLUE = {
    "VARCHAR": "string",
    "TEXT": "string",
    "DATE": "date",
    "DOUBLE PRECISION": "double",
    "BIGINT": "bigint",
    "TIMESTAMPTZ": "timestamp",
}
# The lake's relative location of the curated table (under the lake URI).
CURATED_TABLE_KEY = "curated/market_data/"


def lake_file_columns() -> list[tuple[str, str]]:
    """(name, Glue type) of each column of a curated Parquet file, in file
    order: the CREATE TABLE of FACT_TABLE_DDL less the partition keys.
    Raises ValueError on a type POSTGRES_TO_GLUE does not know (a new column
    type needs a decision here, not a silent default)."""
    body = FACT_TABLE_DDL.read_text().split("CREATE TABLE", 1)[1]
    partition = {name for name, _ in LAKE_PARTITION_KEYS}
    out = []
    for line in body.splitlines():
        line = line.strip()
        if not line.startswith('"'):
            continue
        name, rest = line[1:].split('"', 1)
        sql_type = re.sub(r"\(.*\)", "", rest.strip().rstrip(",").removesuffix("NOT NULL")).strip()
        if sql_type not in POSTGRES_TO_GLUE:
            raise ValueError(f"{FACT_TABLE_DDL.name}: column {name} has type {sql_type!r}, which has no Glue type in POSTGRES_TO_GLUE")
        if name not in partition:
            out.append((name, POSTGRES_TO_GLUE[sql_type]))
    return out


# The run ledger (shared/core/src/lake/runs.rs: lake/state/runs/ticker=X.json,
# a ticker's latest run and each stage's outcome): every function reads and
# writes it, in its own statement (RunLedger) even where a wider grant
# (lake/state/*) covers it. No s3:ListBucket for it: a missing record reads
# as 403 to fetch and load, which record_stage takes as no record.
RUN_LEDGER = f"{LAKE_PREFIX}/state/runs/*"

# The records of transient failures each SQS consumer writes for `mdp dlq
# show` (state/failures/<stage>/<message id>.json), expired after 14 days.
def FAILURES(stage: str) -> str:
    return f"{LAKE_PREFIX}/state/failures/{stage}/*"

# Receives per message before the dead-letter queue (every queue's redrive);
# with MARKET_DATA_MAX_RETRIES in-process retries, a ticker's fetch message
# makes at most (retries + 1) x MAX_RECEIVES chart requests.
MAX_RECEIVES = 5

# The SQS actions a function needs on the queue it consumes: the event source
# mapping polls with the function's role (receive, delete, attributes) and
# the function delays a transient failure (change visibility).
CONSUMER_ACTIONS = frozenset(
    {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}
)
# Besides its stack resources, every role may write its own log group and
# send X-Ray traces (Tracing: Active; X-Ray has no resource-level permissions).
LOG_ACTIONS = frozenset({"logs:CreateLogStream", "logs:PutLogEvents"})
TRACE_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})

# The queues: FIFO ones are grouped by ticker (MessageGroupId) so that the
# messages of one ticker are handled one at a time, in order, across
# invocations; their dead-letter queues are FIFO as well. The consuming
# function's DLQ is the queue's logical id with Queue replaced by DLQ.
QUEUES: dict[str, dict[str, Any]] = {
    "FetchQueue": {"fifo": False},
    "TransformQueue": {"fifo": True},
    "LoadQueue": {"fifo": True},
}

# The five functions (the fifth, report, is invoked by its own schedule):
# - binary, timeout (s), log group, the queue consumed ("source") and the
#   event source mapping's BatchSize ("batch");
# - env: variables (besides the common ones of functions.COMMON_ENV) and
#   their values with the parameters' defaults ("<X>": Ref X); unset: the
#   variables that must be absent with the defaults;
# - IAM, exactly: send (queues it may SendMessage to), get/put (lake key
#   patterns under LAKE_PREFIX for s3:GetObject/s3:PutObject), list (the
#   s3:prefix values s3:ListBucket is limited to), secret (GetSecretValue on
#   WarehouseSecretArn). The source queue gets CONSUMER_ACTIONS.
FUNCTIONS: dict[str, dict[str, Any]] = {
    "ValidateFunction": {
        "binary": "validate",
        "timeout": 60,
        "log_group": "ValidateLogGroup",
        "source": None,
        "batch": None,
        # Fetches go to the fetch queue; loads of tickers whose warehouse is
        # behind the lake go straight to the load queue.
        "env": {"FETCH_QUEUE_URL": "<FetchQueue>", "LOAD_QUEUE_URL": "<LoadQueue>"},
        "unset": set(),
        "send": {"FetchQueue", "LoadQueue"},
        "get": {"lake/state/*", RUN_LEDGER},
        "put": {RUN_LEDGER},
        "list": {"lake/state/*"},
        "secret": False,
    },
    "FetchFunction": {
        "binary": "fetch",
        "timeout": 300,
        "log_group": "FetchLogGroup",
        "source": "FetchQueue",
        # One record per invocation: the function handles its records one at
        # a time, so a larger batch could outlast the timeout.
        "batch": 1,
        # One chart request in flight per function: the deployment holds at
        # most FetchMaxConcurrency.
        "env": {"MARKET_DATA_API_CONCURRENCY": "1", "TRANSFORM_QUEUE_URL": "<TransformQueue>", "FETCH_DLQ_URL": "<FetchDLQ>"},
        "unset": {"MARKET_DATA_API_RATE"},
        "send": {"TransformQueue", "FetchDLQ"},
        "get": {RUN_LEDGER, FAILURES("fetch")},
        "put": {"lake/raw/*", RUN_LEDGER, FAILURES("fetch")},
        "list": set(),
        "secret": False,
    },
    "TransformFunction": {
        "binary": "transform",
        "timeout": 120,
        "log_group": "TransformLogGroup",
        "source": "TransformQueue",
        "batch": 10,
        "env": {"LOAD_QUEUE_URL": "<LoadQueue>", "TRANSFORM_DLQ_URL": "<TransformDLQ>"},
        "unset": set(),
        "send": {"LoadQueue", "TransformDLQ"},
        # Quality findings and quarantined bars beside the curated zone;
        # listing their prefixes makes an absent file a 404, not a 403.
        "get": {"lake/raw/*", "lake/curated/*", "lake/state/*", "lake/quality/*", "lake/quarantine/market_data/*", RUN_LEDGER, FAILURES("transform")},
        "put": {"lake/curated/*", "lake/state/*", "lake/quality/*", "lake/quarantine/market_data/*", RUN_LEDGER, FAILURES("transform")},
        "list": {"lake/curated/*", "lake/state/*", "lake/quality/*", "lake/quarantine/market_data/*"},
        "secret": False,
    },
    "LoadFunction": {
        "binary": "load",
        "timeout": 300,
        "log_group": "LoadLogGroup",
        "source": "LoadQueue",
        "batch": 10,
        "env": {
            "WAREHOUSE_LOAD_STRATEGY": "upsert",
            "WAREHOUSE_BATCH_SIZE": "1000",
            "WAREHOUSE_SECRET_ARN": "<WarehouseSecretArn>",
            "LOAD_DLQ_URL": "<LoadDLQ>",
        },
        "unset": {"WAREHOUSE_SSL_ROOT_CERT"},
        "send": {"LoadDLQ"},
        "get": {"lake/curated/*", "lake/state/*", "lake/quality/*", "lake/quarantine/market_data/*", RUN_LEDGER, FAILURES("load")},
        # The load mark, after each successful load.
        "put": {"lake/state/loaded/*", RUN_LEDGER, FAILURES("load")},
        "list": {"lake/curated/*", "lake/quality/*", "lake/quarantine/market_data/*"},
        "secret": True,
    },
    "ReportFunction": {
        "binary": "report",
        "timeout": 300,
        "log_group": "ReportLogGroup",
        "source": None,
        "batch": None,
        "env": {},
        "unset": set(),
        "send": set(),
        # The curated rows and corporate actions, the watermarks, the quality
        # findings and the quarantined bars; listing them lists the tickers
        # and makes an absent side file a 404.
        "get": {"lake/curated/*", "lake/state/*", "lake/quality/*", "lake/quarantine/*"},
        "put": {"lake/reports/*"},
        "list": {"lake/curated/*", "lake/state/*", "lake/quality/*", "lake/quarantine/*"},
        "secret": False,
    },
}

# The function each schedule invokes: the daily run and the freshness check
# invoke validate; the report's schedule (after the daily run's loads) the
# report function.
REPORT_FUNCTION = "ReportFunction"
