"""Checks of what protects the data: the lake bucket (retention, public access
block, encryption, raw-data lifecycle, TLS-only policy) and the IAM policies
of the functions and the schedule.

Each function's role must reach exactly the bucket prefixes, queues and
secret listed for it in expected.FUNCTIONS: no wildcard resource, no
whole-service action, none of the destructive actions of FORBIDDEN, and only
the managed policies SAM attaches by itself. statements() and allows() are
the building blocks for further IAM checks.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

from .cfn import Context, as_list, check, referenced, resolve
from .expected import FUNCTIONS, LAKE_PREFIX

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


def check_bucket(ctx: Context) -> None:
    res = ctx.res
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


def check_iam(ctx: Context) -> None:
    """Records in ctx.sqs_poller_policy the functions SAM gave the SQS poller
    policy (printed as a note when the check passes)."""
    res, params = ctx.res, ctx.params
    notes = ctx.sqs_poller_policy
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
