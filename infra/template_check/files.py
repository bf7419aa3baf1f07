"""Checks of the repository files the template depends on: every local path
it names exists, the function crates are the workspace members whose package
and binary the template builds, and the sample events in events/ (used by
`sam local invoke`) follow the template and the DESIGN.md section 3/4
message contracts.

These read the original SAM template and the working tree, not the
translated CloudFormation, so they run even when the SAM transform fails.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tomllib

from .cfn import EVENTS, ROOT, Context, Unresolvable, check, resolve
from .expected import FUNCTIONS, QUEUES


def check_files(ctx: Context) -> None:
    """Every local path the template names must exist, except the function
    crates under functions/, which may not be written yet. A crate that exists
    must be a workspace member whose package and binary the template names.
    Records the missing crates in ctx.pending."""
    sam = ctx.sam
    pending = ctx.pending
    root_manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    members = (root_manifest.get("workspace") or {}).get("members") or []
    for name, r in sam.get("Resources", {}).items():
        props = r.get("Properties") or {}
        for key in ("CodeUri", "ContentUri", "DefinitionUri", "Location", "TemplateURL"):
            path = props.get(key)
            if not isinstance(path, str) or re.match(r"^(s3|https?)://", path):
                continue
            local = (ROOT / path).resolve()
            check(local.is_relative_to(ROOT), f"{name}: {key} {path} is outside the repository")
            rel = local.relative_to(ROOT).as_posix() if local.is_relative_to(ROOT) else path
            is_crate = r["Type"] == "AWS::Serverless::Function" and rel.startswith("functions/")
            if not local.exists():
                if is_crate:
                    pending.append(rel)
                else:
                    check(False, f"{name}: {key} {path} does not exist")
                continue
            if r["Type"] != "AWS::Serverless::Function":
                continue
            manifest = local / "Cargo.toml"
            if not manifest.exists():
                if is_crate:
                    pending.append(rel)
                else:
                    check(False, f"{name}: {path}/Cargo.toml does not exist")
                continue
            binary = ((r.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
            crate = tomllib.loads(manifest.read_text())
            package = (crate.get("package") or {}).get("name")
            check(package == binary, f"{name}: {rel} is package {package!r}, the template builds binary {binary!r}")
            bins = [b.get("name") for b in crate.get("bin") or []]
            has_bin = binary in bins or (package == binary and (local / "src" / "main.rs").exists())
            check(has_bin, f"{name}: {rel} has no binary {binary!r} (src/main.rs or a [[bin]] of that name)")
            check(
                any(fnmatch.fnmatchcase(rel, m.rstrip("/")) for m in members),
                f"{name}: {rel} is not a member of the workspace in Cargo.toml",
            )


RAW_KEY = re.compile(r"raw/yahoo/chart/ticker=([A-Za-z0-9._%-]+)/(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})\.json")
CURATED_KEY = re.compile(r"curated/market_data/ticker=([A-Za-z0-9._%-]+)/year=(\d{4})/part-0\.parquet")
STAGE_FIELDS = {
    "FetchFunction": ({"v", "run_id", "ticker", "start", "end", "mode"}, "fetch.json"),
    "TransformFunction": ({"v", "run_id", "ticker", "raw_key", "start", "end"}, "transform.json"),
    "LoadFunction": ({"v", "run_id", "ticker", "partition_keys", "rows", "min_date", "max_date"}, "load.json"),
}


def source_arn_pattern(ctx: Context, queue: str) -> re.Pattern[str]:
    """The eventSourceARN of a record from `queue`, for any stack name: with
    its QueueName when the template names it (FIFO queues must), else a
    CloudFormation-generated name, which holds the logical id."""
    props = ((ctx.sam.get("Resources") or {}).get(queue) or {}).get("Properties") or {}
    name = re.escape(queue) + r"[A-Za-z0-9-]*"
    if "QueueName" in props:
        marker = "\x00"
        try:
            text = str(resolve(props["QueueName"], dict(ctx.params, **{"AWS::StackName": marker})))
            name = r"[A-Za-z][A-Za-z0-9-]*".join(re.escape(part) for part in text.split(marker))
        except Unresolvable:
            pass
    return re.compile(r"arn:aws:sqs:[a-z0-9-]+:\d{12}:(?:[A-Za-z0-9_-]*-)?" + name)


def check_events(ctx: Context) -> None:
    """The sample events of `sam local invoke` follow DESIGN.md sections 3-4,
    and the records of FIFO queues carry what SQS adds to them (the ticker as
    MessageGroupId, the body's SHA-256 as content-based deduplication id, a
    sequence number). Records in ctx.events how many were read."""
    count = 0
    date = re.compile(r"\d{4}-\d{2}-\d{2}")
    path = EVENTS / "validate.json"
    try:
        ev = json.loads(path.read_text())
        count += 1
        check(isinstance(ev, dict) and set(ev) <= {"tickers", "date", "start", "end"}, f"{path.name}: not a schedule event")
        check(isinstance(ev.get("tickers"), list) and ev["tickers"], f"{path.name}: no tickers list")
        check(all(date.fullmatch(str(ev[k])) for k in ("date", "start", "end") if k in ev), f"{path.name}: dates are not YYYY-MM-DD")
    except (OSError, json.JSONDecodeError) as e:
        check(False, f"events/validate.json: {e}")
    for fn, (fields, file) in STAGE_FIELDS.items():
        path = EVENTS / file
        try:
            ev = json.loads(path.read_text())
            records = ev["Records"]
            count += 1
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            check(False, f"events/{file}: not an SQS event: {e}")
            continue
        for rec in records:
            for key in ("messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody", "eventSource", "eventSourceARN", "awsRegion"):
                check(key in rec, f"events/{file}: record has no {key}")
            check(rec.get("eventSource") == "aws:sqs", f"events/{file}: eventSource is not aws:sqs")
            queue = FUNCTIONS[fn]["source"]
            fifo = QUEUES[queue]["fifo"]
            arn = str(rec.get("eventSourceARN", ""))
            check(source_arn_pattern(ctx, queue).fullmatch(arn), f"events/{file}: eventSourceARN {arn!r} is not a {queue} of the template")
            attributes = rec.get("attributes") or {}
            check(str(attributes.get("ApproximateReceiveCount", "")).isdigit(), f"events/{file}: no ApproximateReceiveCount")
            body = str(rec.get("body", ""))
            check(rec.get("md5OfBody") == hashlib.md5(body.encode()).hexdigest(), f"events/{file}: md5OfBody does not match the body")
            try:
                msg = json.loads(body)
            except json.JSONDecodeError as e:
                check(False, f"events/{file}: body is not JSON: {e}")
                continue
            if fifo:
                check(
                    isinstance(msg, dict) and attributes.get("MessageGroupId") == msg.get("ticker"),
                    f"events/{file}: MessageGroupId {attributes.get('MessageGroupId')!r} is not the ticker of the body ({queue} is FIFO, grouped by ticker)",
                )
                check(
                    attributes.get("MessageDeduplicationId") == hashlib.sha256(body.encode()).hexdigest(),
                    f"events/{file}: MessageDeduplicationId is not the SHA-256 of the body (content-based deduplication)",
                )
                check(str(attributes.get("SequenceNumber", "")).isdigit(), f"events/{file}: no SequenceNumber (a FIFO record has one)")
            else:
                check(
                    not {"MessageGroupId", "MessageDeduplicationId", "SequenceNumber"} & set(attributes),
                    f"events/{file}: FIFO attributes on a record of the standard queue {queue}",
                )
            check(set(msg) == fields, f"events/{file}: body fields {sorted(msg)}, expected {sorted(fields)}")
            check(msg.get("v") == 1, f"events/{file}: body has no \"v\": 1")
            for k in ("start", "end", "min_date", "max_date"):
                if k in msg:
                    check(date.fullmatch(str(msg[k])), f"events/{file}: {k} is not YYYY-MM-DD")
            if "raw_key" in msg:
                m = RAW_KEY.fullmatch(str(msg["raw_key"]))
                check(
                    m and m.groups() == (msg["ticker"], msg["start"], msg["end"]),
                    f"events/{file}: raw_key {msg['raw_key']!r} is not raw/yahoo/chart/ticker=T/START_END.json of the message",
                )
            for key in msg.get("partition_keys", []):
                m = CURATED_KEY.fullmatch(str(key))
                check(m and m.group(1) == msg["ticker"], f"events/{file}: partition key {key!r} is not curated/market_data/ticker=T/year=Y/part-0.parquet")
    ctx.events = count
