#!/usr/bin/env python3
"""Offline check of the SAM template (no AWS account, no network).

    python3 infra/check_template.py

1. Transforms template.yaml with aws-sam-translator, as `sam deploy` would
   (local CodeUri paths replaced by an S3 URI, as `sam package` does).
2. Lints the original template with cfn-lint (which runs the SAM transform
   itself) and the translated CloudFormation too; any error fails, warnings
   are printed.
3. Asserts on the translated CloudFormation what cfn-lint cannot know: the
   runtime, architecture and handler of the four functions, their timeouts,
   the SQS event source mappings (ReportBatchItemFailures, MaximumConcurrency),
   visibility timeouts of at least six times the consumer's timeout, the
   redrive policies, the schedule, the bucket's protection, the environment
   of DESIGN.md section 7, and IAM policies scoped to exactly the bucket,
   queues and secret each function uses.
4. Checks that every local file the template names exists (the functions/
   crates may still be missing; when present they must be the workspace
   members whose package and binary the template names) and that the sample
   events in events/ match the template and the section 3/4 contracts.

Needs the versions pinned in tests/requirements.txt (aws-sam-translator,
cfn-lint). Exits 1 with one line per problem.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import os
import re
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"

# samtranslator asks boto3 for the region to pick the partition of the ARNs it
# writes; pin it so the check is the same on every machine (no network use).
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_REGION", None)
os.environ.pop("AWS_PROFILE", None)

# The four functions: crate/binary, timeout (s), the queue they consume, the
# queues they may send to, and the lake prefixes they may write.
FUNCTIONS: dict[str, dict[str, Any]] = {
    "ValidateFunction": {
        "binary": "validate",
        "timeout": 60,
        "source": None,
        "send": {"FetchQueue"},
        "put": set(),
        "secret": False,
    },
    "FetchFunction": {
        "binary": "fetch",
        "timeout": 300,
        "source": "FetchQueue",
        "send": {"TransformQueue", "FetchDLQ"},
        "put": {"lake/raw/"},
        "secret": False,
    },
    "TransformFunction": {
        "binary": "transform",
        "timeout": 120,
        "source": "TransformQueue",
        "send": {"LoadQueue", "TransformDLQ"},
        "put": {"lake/curated/", "lake/state/"},
        "secret": False,
    },
    "LoadFunction": {
        "binary": "load",
        "timeout": 300,
        "source": "LoadQueue",
        "send": {"LoadDLQ"},
        "put": set(),
        "secret": True,
    },
}
FETCH_DEFAULT_CONCURRENCY = 5
SQS_MAX_VISIBILITY = 43200
DLQ_RETENTION = 14 * 24 * 3600
LAKE_PREFIX = "lake"

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
# Managed policies SAM attaches by itself: logs, X-Ray (Tracing: Active) and,
# for functions with an SQS event, the poller's ReceiveMessage/DeleteMessage/
# GetQueueAttributes (an AWS managed policy with Resource "*": the one grant
# SAM gives no way to scope; see the note printed at the end).
SQS_EXECUTION_POLICY = "service-role/AWSLambdaSQSQueueExecutionRole"
ALLOWED_MANAGED = {
    "service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess",
    SQS_EXECUTION_POLICY,
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
    "ScheduleName": None,  # checked against the generated schedule below
}

problems: list[str] = []


def check(ok: Any, message: str) -> bool:
    if not ok:
        problems.append(message)
    return bool(ok)


# ------------------------------------------------------------ intrinsics
class Unresolvable(Exception):
    pass


PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "mdp",
    "AWS::URLSuffix": "amazonaws.com",
}


def resolve(node: Any, params: dict[str, Any]) -> Any:
    """Evaluates the intrinsics the template uses, with parameter values;
    a resource stands for "<Name>" (Ref) or "<Name.Attr>" (GetAtt)."""
    if isinstance(node, list):
        return [resolve(v, params) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref":
            if arg in params:
                return params[arg]
            if arg in PSEUDO:
                return PSEUDO[arg]
            return f"<{arg}>"
        if key == "Fn::GetAtt":
            name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
            return f"<{name}.{attr}>"
        if key == "Fn::Join":
            sep, items = arg
            items = resolve(items, params)
            return str(sep).join(str(i) for i in items)
        if key == "Fn::Split":
            sep, value = arg
            return str(resolve(value, params)).split(sep)
        if key == "Fn::Select":
            index, items = arg
            return resolve(items, params)[int(resolve(index, params))]
        if key == "Fn::Sub":
            text, names = (arg, {}) if isinstance(arg, str) else arg
            names = {k: resolve(v, params) for k, v in names.items()}

            def sub(m: re.Match[str]) -> str:
                inner = m.group(1)
                if inner.startswith("!"):
                    return "${" + inner[1:] + "}"
                if inner in names:
                    return str(names[inner])
                if inner in params:
                    return str(params[inner])
                if inner in PSEUDO:
                    return PSEUDO[inner]
                return f"<{inner}>"

            return re.sub(r"\$\{([^}]+)\}", sub, text)
        if key.startswith("Fn::") or key == "Condition":
            raise Unresolvable(key)
    return {k: resolve(v, params) for k, v in node.items()}


def referenced(node: Any) -> set[str]:
    """Logical ids and parameters a value refers to (Ref, GetAtt, Sub)."""
    out: set[str] = set()
    if isinstance(node, list):
        for v in node:
            out |= referenced(v)
    elif isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                out.add((v if isinstance(v, list) else v.split("."))[0])
            elif k == "Fn::Sub":
                text, names = (v, {}) if isinstance(v, str) else v
                for m in re.findall(r"\$\{([^}!][^}]*)\}", text):
                    base = m.split(".")[0]
                    if base not in names:
                        out.add(base)
                out |= referenced(names)
            else:
                out |= referenced(v)
    return {r for r in out if not r.startswith("AWS::")}


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


# ------------------------------------------------------------ transform
def load_template() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(TEMPLATE.read_text())


def sam_transform(sam: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    class NoManagedPolicyLookup:
        """The template names managed policies by ARN or uses SAM policy
        templates only, which need no name-to-ARN map from IAM."""

        def load(self) -> dict[str, str]:
            raise RuntimeError("the template names a managed policy by name: use its ARN")

    doc = copy.deepcopy(sam)
    for resource in doc.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = "s3://offline-check/" + props["CodeUri"].strip("./")
    try:
        return transform(doc, {}, NoManagedPolicyLookup())
    except InvalidDocumentException as e:
        for cause in e.causes:
            problems.append(f"SAM transform: {cause.message}")
        return {}


# ------------------------------------------------------------ cfn-lint
def lint(translated: dict[str, Any]) -> list[str]:
    # Imported after the samtranslator run on purpose: cfn-lint relaxes
    # samtranslator's own resource validation when it is imported.
    from cfnlint.api import ManualArgs, lint as lint_str, lint_file

    config = ManualArgs(regions=["us-east-1"])
    warnings = []
    runs = [
        ("template.yaml", lint_file(TEMPLATE, config=config)),
        ("translated template", lint_str(json.dumps(translated), config=config)),
    ]
    for label, matches in runs:
        for m in matches:
            where = f"{label}:{m.linenumber}" if m.linenumber else label
            line = f"cfn-lint {m.rule.id} {where}: {m.message}"
            if m.rule.id.startswith("E"):
                problems.append(line)
            else:
                warnings.append(line)
    return warnings


# ------------------------------------------------------------ checks
def check_functions(res: dict[str, Any], params: dict[str, Any]) -> None:
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


def check_queues_and_mappings(res: dict[str, Any], params: dict[str, Any]) -> None:
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


def check_schedule(res: dict[str, Any], params: dict[str, Any], sam: dict[str, Any]) -> str | None:
    schedules = {k: v["Properties"] for k, v in res.items() if v["Type"] == "AWS::Scheduler::Schedule"}
    if not check(len(schedules) == 1, f"{len(schedules)} AWS::Scheduler::Schedule, expected 1"):
        return None
    (name, s), = schedules.items()
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
    return name


def check_bucket(res: dict[str, Any], params: dict[str, Any]) -> None:
    buckets = {k: v for k, v in res.items() if v["Type"] == "AWS::S3::Bucket"}
    if not check(list(buckets) == ["LakeBucket"], f"buckets {sorted(buckets)}, expected ['LakeBucket']"):
        return
    b = buckets["LakeBucket"]
    p = b.get("Properties") or {}
    check(b.get("DeletionPolicy") == "Retain", "LakeBucket: DeletionPolicy is not Retain")
    check(b.get("UpdateReplacePolicy") == "Retain", "LakeBucket: UpdateReplacePolicy is not Retain")
    pab = p.get("PublicAccessBlockConfiguration") or {}
    for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        check(pab.get(flag) is True, f"LakeBucket: PublicAccessBlockConfiguration.{flag} is not true")
    rules = (p.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
    algos = [(r.get("ServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") for r in rules]
    check(algos and all(a in ("AES256", "aws:kms", "aws:kms:dsse") for a in algos), f"LakeBucket: encryption {algos!r}")
    raw_rules = []
    for r in (p.get("LifecycleConfiguration") or {}).get("Rules") or []:
        prefix = r.get("Prefix", (r.get("Filter") or {}).get("Prefix"))
        if prefix == f"{LAKE_PREFIX}/raw/" and r.get("Status") == "Enabled":
            raw_rules.append(r)
    check(
        len(raw_rules) == 1 and referenced(raw_rules[0].get("ExpirationInDays")) == {"RawRetentionDays"},
        f"LakeBucket: no enabled lifecycle rule expiring {LAKE_PREFIX}/raw/ after RawRetentionDays",
    )
    policies = [v["Properties"] for v in res.values() if v["Type"] == "AWS::S3::BucketPolicy"]
    tls = any(
        st.get("Effect") == "Deny" and "aws:SecureTransport" in json.dumps(st.get("Condition"))
        for pol in policies
        for st in as_list(pol["PolicyDocument"]["Statement"])
    )
    check(tls, "LakeBucket: no bucket policy denying requests without TLS")


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for pol in role["Properties"].get("Policies") or []:
        out += as_list(pol["PolicyDocument"].get("Statement", []))
    return out


PROBES = {
    "send": "sqs:SendMessage",
    "visibility": "sqs:ChangeMessageVisibility",
    "put": "s3:PutObject",
    "get": "s3:GetObject",
    "secret": "secretsmanager:GetSecretValue",
}
FORBIDDEN = ["s3:DeleteObject", "s3:PutBucketPolicy", "s3:PutLifecycleConfiguration", "sqs:DeleteQueue", "sqs:PurgeQueue", "sqs:SetQueueAttributes"]


def allows(stmt: dict[str, Any], action: str) -> bool:
    return stmt.get("Effect") == "Allow" and any(
        fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in as_list(stmt.get("Action", []))
    )


def check_iam(res: dict[str, Any], params: dict[str, Any]) -> list[str]:
    notes = []
    for name, spec in FUNCTIONS.items():
        fn = res.get(name)
        if not fn:
            continue
        role_ids = referenced(fn["Properties"].get("Role"))
        role = res.get(next(iter(role_ids), ""), {})
        if not check(role.get("Type") == "AWS::IAM::Role", f"{name}: no execution role in the template"):
            continue
        stmts = statements(role)
        for st in stmts:
            if st.get("Effect") != "Allow":
                continue
            actions = [str(a) for a in as_list(st.get("Action", []))]
            scoped = [a for a in actions if a == "*" or a.split(":")[0].lower() in ("s3", "sqs", "secretsmanager")]
            if not scoped:
                continue
            check(not any(a == "*" or a.endswith(":*") for a in actions), f"{name}: grants every action of a service: {actions}")
            for r in as_list(st.get("Resource", [])):
                text = json.dumps(resolve(r, params))
                check(
                    referenced(r) and "\"*\"" != text,
                    f"{name}: grants {scoped} on {text}, not on a resource of this stack",
                )
        # Exactly the resources each function uses.
        grants: dict[str, set[str]] = {}
        for probe, action in PROBES.items():
            targets: set[str] = set()
            for st in stmts:
                if allows(st, action):
                    for r in as_list(st.get("Resource", [])):
                        targets |= referenced(r)
            grants[probe] = targets
        want_vis = {spec["source"]} if spec["source"] else set()
        check(grants["send"] == spec["send"], f"{name}: may send to {sorted(grants['send'])}, expected {sorted(spec['send'])}")
        check(grants["visibility"] == want_vis, f"{name}: may change visibility on {sorted(grants['visibility'])}, expected {sorted(want_vis)}")
        check(grants["get"] == {"LakeBucket"}, f"{name}: may read {sorted(grants['get'])}, expected the lake bucket")
        check(
            grants["secret"] == ({"WarehouseSecretArn"} if spec["secret"] else set()),
            f"{name}: may read secrets {sorted(grants['secret'])}",
        )
        put_prefixes = set()
        for st in stmts:
            if allows(st, PROBES["put"]):
                for r in as_list(st.get("Resource", [])):
                    m = re.fullmatch(r"(?:arn:aws:s3:::)?<LakeBucket(?:\.Arn)?>/(.*)\*", str(resolve(r, params)))
                    put_prefixes.add((m.group(1) or "the whole bucket") if m else str(resolve(r, params)))
        check(put_prefixes == spec["put"], f"{name}: may write {sorted(put_prefixes)}, expected {sorted(spec['put'])}")
        for action in FORBIDDEN:
            check(not any(allows(st, action) for st in stmts), f"{name}: is allowed {action}")
        # Managed policies SAM attached.
        for arn in role["Properties"].get("ManagedPolicyArns") or []:
            short = str(resolve(arn, params)).split(":policy/", 1)[-1]
            check(short in ALLOWED_MANAGED, f"{name}: unexpected managed policy {short}")
            if short == SQS_EXECUTION_POLICY:
                check(spec["source"], f"{name}: has the SQS poller policy but no SQS event")
                notes.append(name)
    # The schedule's role may only invoke validate.
    for rid, r in res.items():
        if r["Type"] != "AWS::IAM::Role" or "scheduler.amazonaws.com" not in json.dumps(r["Properties"]["AssumeRolePolicyDocument"]):
            continue
        for st in statements(r):
            check(
                as_list(st.get("Action")) == ["lambda:InvokeFunction"] and referenced(st.get("Resource")) == {"ValidateFunction"},
                f"{rid}: the schedule's role may do more than invoke ValidateFunction: {st}",
            )
    return notes


def check_outputs(cfn: dict[str, Any], params: dict[str, Any], schedule: str | None) -> None:
    outputs = cfn.get("Outputs") or {}
    for key, value in REQUIRED_OUTPUTS.items():
        if not check(key in outputs, f"Outputs: no {key}"):
            continue
        got = resolve(outputs[key].get("Value"), params)
        if value is None:
            check(schedule and got == f"<{schedule}>", f"Outputs: {key} is {got!r}, expected the name of {schedule}")
        else:
            check(got == value, f"Outputs: {key} is {got!r}, expected {value!r}")


def check_files(sam: dict[str, Any]) -> list[str]:
    """Every local path the template names must exist, except the function
    crates under functions/, which may not be written yet. A crate that exists
    must be a workspace member whose package and binary the template names."""
    pending = []
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
    return pending


RAW_KEY = re.compile(r"raw/yahoo/chart/ticker=([A-Za-z0-9._%-]+)/(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})\.json")
CURATED_KEY = re.compile(r"curated/market_data/ticker=([A-Za-z0-9._%-]+)/year=(\d{4})/part-0\.parquet")
STAGE_FIELDS = {
    "FetchFunction": ({"v", "run_id", "ticker", "start", "end", "mode"}, "fetch.json"),
    "TransformFunction": ({"v", "run_id", "ticker", "raw_key", "start", "end"}, "transform.json"),
    "LoadFunction": ({"v", "run_id", "ticker", "partition_keys", "rows", "min_date", "max_date"}, "load.json"),
}


def check_events() -> int:
    """The sample events of `sam local invoke` follow DESIGN.md sections 3-4."""
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
            check(str(rec.get("eventSourceARN", "")).endswith(queue) and rec["eventSourceARN"].startswith("arn:aws:sqs:"), f"events/{file}: eventSourceARN is not a {queue}")
            check(str((rec.get("attributes") or {}).get("ApproximateReceiveCount", "")).isdigit(), f"events/{file}: no ApproximateReceiveCount")
            body = str(rec.get("body", ""))
            check(rec.get("md5OfBody") == hashlib.md5(body.encode()).hexdigest(), f"events/{file}: md5OfBody does not match the body")
            try:
                msg = json.loads(body)
            except json.JSONDecodeError as e:
                check(False, f"events/{file}: body is not JSON: {e}")
                continue
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
    return count


def main() -> int:
    started = time.monotonic()
    sam = load_template()
    params = {k: v.get("Default") for k, v in (sam.get("Parameters") or {}).items() if "Default" in v}
    check(sam.get("Transform") == "AWS::Serverless-2016-10-31", "template.yaml: Transform is not AWS::Serverless-2016-10-31")
    cfn = sam_transform(sam)
    warnings = lint(cfn) if cfn else []
    notes: list[str] = []
    schedule = None
    if cfn:
        res = cfn["Resources"]
        check_functions(res, params)
        check_queues_and_mappings(res, params)
        schedule = check_schedule(res, params, sam)
        check_bucket(res, params)
        notes = check_iam(res, params)
        check_outputs(cfn, params, schedule)
    pending = check_files(sam)
    events = check_events()
    elapsed = time.monotonic() - started

    for w in warnings:
        print(f"warning: {w}")
    if problems:
        for p in problems:
            print(f"FAIL: {p}", file=sys.stderr)
        print(f"template check: {len(problems)} problem(s) ({elapsed:.1f}s)", file=sys.stderr)
        return 1

    import samtranslator
    from cfnlint.version import __version__ as cfnlint_version

    counts: dict[str, int] = {}
    for r in cfn["Resources"].values():
        counts[r["Type"]] = counts.get(r["Type"], 0) + 1
    print(
        f"template check OK ({elapsed:.1f}s; aws-sam-translator {samtranslator.__version__}, cfn-lint {cfnlint_version}): "
        f"{len(cfn['Resources'])} resources after the SAM transform "
        f"({counts.get('AWS::Lambda::Function', 0)} functions, {counts.get('AWS::SQS::Queue', 0)} queues, "
        f"{counts.get('AWS::Lambda::EventSourceMapping', 0)} event source mappings, schedule {schedule}); "
        f"cfn-lint: 0 errors, {len(warnings)} warnings; {events} sample events"
    )
    if pending:
        print(f"note: function crates not written yet (build will need them): {', '.join(pending)}")
    if notes:
        print(
            "note: SAM's SQS event attaches the AWS managed policy AWSLambdaSQSQueueExecutionRole "
            f"(ReceiveMessage/DeleteMessage/GetQueueAttributes on any queue) to {', '.join(notes)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
