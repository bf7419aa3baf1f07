"""main(): load and transform the template, lint it, run the checks in order
and print the result (one FAIL line per problem and exit 1, or a summary).

The checks are plain functions taking a Context, listed in the order they
run; a new check is written in the module of its concern and appended here.
Order matters where a check reads what an earlier one recorded in the
Context (check_outputs reads the schedule found by check_schedule).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from .cfn import Context, check, lint, load_template, problems, sam_transform
from .files import check_events, check_files
from .glue import check_glue
from .observability import SUMMARY, check_dashboard, check_logging
from .operations import check_alarms, check_local_files, check_schedule_dead_letters
from .functions import check_functions, check_optional_settings, check_outputs, check_queues_and_mappings, check_schedule
from .security import check_bucket, check_iam

Check = Callable[[Context], None]

# Run on the translated CloudFormation, only when the SAM transform succeeded.
TRANSLATED_CHECKS: list[Check] = [
    check_functions,
    check_optional_settings,
    check_queues_and_mappings,
    check_schedule,
    check_bucket,
    check_iam,
    check_glue,
    check_outputs,
    # observability and operations: check_dashboard reads what check_logging found
    check_logging,
    check_alarms,
    check_schedule_dead_letters,
    check_dashboard,
]
# Run on the SAM template and the working tree, always.
SOURCE_CHECKS: list[Check] = [
    check_files,
    check_events,
    check_local_files,
]


def main() -> int:
    started = time.monotonic()
    sam = load_template()
    params = {k: v.get("Default") for k, v in (sam.get("Parameters") or {}).items() if "Default" in v}
    check(sam.get("Transform") == "AWS::Serverless-2016-10-31", "template.yaml: Transform is not AWS::Serverless-2016-10-31")
    cfn = sam_transform(sam)
    ctx = Context(sam=sam, params=params, cfn=cfn)
    ctx.warnings = lint(cfn) if cfn else []
    for run_check in (TRANSLATED_CHECKS if cfn else []) + SOURCE_CHECKS:
        run_check(ctx)
    elapsed = time.monotonic() - started

    for w in ctx.warnings:
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
        f"{counts.get('AWS::Lambda::EventSourceMapping', 0)} event source mappings, schedule {ctx.schedule}, "
        f"{len(set(ctx.roles.values()))} function roles with no managed policy, Athena table {ctx.glue_table} with partition projection); "
        f"cfn-lint: 0 errors, {len(ctx.warnings)} warnings; {ctx.events} sample events"
    )
    print(
        f"observability: {SUMMARY.get('alarms')} alarms notifying {SUMMARY.get('topic')}, dashboard of {SUMMARY.get('widgets')} widgets, "
        f"schedules {', '.join(SUMMARY.get('schedules', []))} with dead-letter queues, SystemLogLevel {'/'.join(sorted(set((SUMMARY.get('system_log_levels') or {}).values())))}; "
        f"metric names from {SUMMARY.get('metrics_source')}; infra/local/env.json: {SUMMARY.get('env_json')} functions; "
        f"samconfig.toml: stack {SUMMARY.get('stack')}"
    )
    if ctx.pending:
        print(f"note: function crates not written yet (build will need them): {', '.join(ctx.pending)}")
    return 0
