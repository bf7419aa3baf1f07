"""Checks of what gets an operator's attention and what an operator runs:
the alarms and their SNS topic, the two schedules' dead-letter queues, and
the files of `sam local invoke` and `sam deploy` (infra/local/env.json,
samconfig.toml). Apart from observability.py (logging and the dashboard),
whose metric catalogue and template helpers they use.

Translated-template checks (run on what SAM deploys): check_alarms,
check_schedule_dead_letters. Source checks (the SAM template and the
working tree): check_local_files.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from .cfn import ROOT, Context, Unresolvable, as_list, check, evaluate_conditions, referenced, resolve
from .expected import FUNCTIONS, QUEUES
from .observability import (
    NAMESPACE,
    STAGE_DIMENSION,
    SUMMARY,
    check_stage_dimension,
    is_freshness,
    is_report,
    metric_catalogue,
    redrive_dead_letter_queues,
    schedule_dead_letter_queues,
    schedule_target,
    schedules,
    shown,
    single_ref,
)

# ------------------------------------------------------------ alarm helpers
def alarms(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v.get("Properties") or {} for k, v in res.items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def alarm_metrics(props: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric name, {dimension: value node}) of an alarm: its
    metric, or each MetricStat of a metric math alarm."""
    out = []
    if "MetricName" in props:
        dims = {d.get("Name"): d.get("Value") for d in props.get("Dimensions") or []}
        out.append((props.get("Namespace"), props.get("MetricName"), dims))
    for q in props.get("Metrics") or []:
        metric = (q.get("MetricStat") or {}).get("Metric") or {}
        if metric:
            dims = {d.get("Name"): d.get("Value") for d in metric.get("Dimensions") or []}
            out.append((metric.get("Namespace"), metric.get("MetricName"), dims))
    return out


def breaches_above(ctx: Context, props: dict[str, Any], threshold: float) -> bool:
    """The alarm fires exactly when its value exceeds `threshold`."""
    op = props.get("ComparisonOperator")
    try:
        value = float(ctx.resolve(props.get("Threshold")))
    except (TypeError, ValueError, Unresolvable):
        return False
    return (op == "GreaterThanThreshold" and value == threshold) or (
        op == "GreaterThanOrEqualToThreshold" and threshold < value <= threshold + 1
    )


def find_alarms(ctx: Context, namespace: str, metric: str, dimension: str, target: str) -> list[tuple[str, dict[str, Any]]]:
    """Alarms on namespace/metric whose one dimension names `target` (a
    logical id, by Ref or GetAtt)."""
    out = []
    for name, props in alarms(ctx.res).items():
        for ns, mname, dims in alarm_metrics(props):
            if ns == namespace and mname == metric and set(dims) == {dimension} and single_ref(dims[dimension]) == target:
                out.append((name, props))
    return out


# ------------------------------------------------------------ alarms
def check_alarms(ctx: Context) -> None:
    """One SNS topic; every alarm notifies it (and only it); the optional
    e-mail subscription exists exactly when AlarmEmail is given; an alarm on
    every dead-letter queue (messages visible > 0), on the age of the oldest
    message of every stage queue (> QueueAgeAlarmSeconds), on every
    function's errors (> 0), and on StaleTickers (> 0, missing data
    breaching: a check that did not run is a problem). Every metric an alarm
    names in NAMESPACE is one the functions emit."""
    res, sam = ctx.res, ctx.sam
    names, stages, _ = metric_catalogue()
    topics = [k for k, v in res.items() if v["Type"] == "AWS::SNS::Topic"]
    if not check(len(topics) == 1, f"SNS topics {topics}, expected one for the alarms"):
        return
    topic = topics[0]
    all_alarms = alarms(res)
    for name, props in all_alarms.items():
        actions = as_list(props.get("AlarmActions") or [])
        check(actions and all(single_ref(a) == topic for a in actions), f"{name}: AlarmActions {actions!r} do not notify {topic}")
        for key in ("OKActions", "InsufficientDataActions"):
            extra = as_list(props.get(key) or [])
            check(all(single_ref(a) == topic for a in extra), f"{name}: {key} {extra!r} notify something else than {topic}")
        for ns, metric, dims in alarm_metrics(props):
            if ns != NAMESPACE:
                continue
            check(metric in names, f"{name}: alarms on {ns}/{metric}, which the functions do not emit (known: {sorted(names)})")
            check_stage_dimension(ctx, name, metric, dims, stages)
    # The e-mail subscription.
    declared = sam.get("Parameters") or {}
    check(declared.get("AlarmEmail", {}).get("Default") == "", "Parameters: AlarmEmail must default to empty (no subscription)")
    subs = {k: v for k, v in res.items() if v["Type"] == "AWS::SNS::Subscription"}
    email = [k for k, v in subs.items() if (v.get("Properties") or {}).get("Protocol") == "email"]
    if check(len(email) == 1, f"e-mail subscriptions {email}, expected one (Condition on AlarmEmail)"):
        s = subs[email[0]]
        p = s.get("Properties") or {}
        check(single_ref(p.get("TopicArn")) == topic, f"{email[0]}: does not subscribe to {topic}")
        check(single_ref(p.get("Endpoint")) == "AlarmEmail", f"{email[0]}: Endpoint is not the AlarmEmail parameter")
        cond = s.get("Condition")
        for value, present in [("", False), ("ops@example.com", True)]:
            try:
                got = bool(cond) and evaluate_conditions(ctx.cfn, dict(ctx.params, AlarmEmail=value)).get(cond)
            except Unresolvable:
                got = None
            check(
                (got if cond else True) == present,
                f"{email[0]}: with AlarmEmail={value!r} the subscription is {'created' if not present else 'missing'} (Condition {cond!r})",
            )
    # Dead-letter queues: the stages' and the schedules'.
    dlqs = redrive_dead_letter_queues(res) | set(schedule_dead_letter_queues(res).values())
    for dlq in sorted(dlqs):
        found = find_alarms(ctx, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq)
        check(found, f"{dlq}: no alarm on its ApproximateNumberOfMessagesVisible (QueueName !GetAtt {dlq}.QueueName)")
        for alarm, props in found:
            check(breaches_above(ctx, props, 0), f"{alarm}: does not fire on any message in {dlq} (> 0)")
            check(props.get("Statistic") in ("Maximum", "Sum", "Average"), f"{alarm}: statistic {props.get('Statistic')!r}")
            check(props.get("TreatMissingData") in ("notBreaching", "missing", "ignore", None), f"{alarm}: an idle queue publishes nothing; missing data must not alarm")
    # The stage queues' oldest message.
    for queue in QUEUES:
        found = find_alarms(ctx, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queue)
        check(found, f"{queue}: no alarm on ApproximateAgeOfOldestMessage")
        for alarm, props in found:
            check(
                props.get("ComparisonOperator") in ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold")
                and referenced(props.get("Threshold")) == {"QueueAgeAlarmSeconds"},
                f"{alarm}: does not fire above the QueueAgeAlarmSeconds parameter",
            )
            check(props.get("Statistic") == "Maximum", f"{alarm}: statistic {props.get('Statistic')!r}, expected Maximum")
    check("QueueAgeAlarmSeconds" in declared, "Parameters: no QueueAgeAlarmSeconds")
    # Function errors.
    for fn in FUNCTIONS:
        found = find_alarms(ctx, "AWS/Lambda", "Errors", "FunctionName", fn)
        check(found, f"{fn}: no alarm on its AWS/Lambda Errors")
        for alarm, props in found:
            check(breaches_above(ctx, props, 0) and props.get("Statistic") == "Sum", f"{alarm}: does not fire on any error (Sum > 0)")
    # Stale tickers.
    stale = [
        (n, p) for n, p in all_alarms.items()
        for ns, metric, dims in alarm_metrics(p)
        if ns == NAMESPACE and metric == "StaleTickers"
    ]
    if check(len(stale) == 1, f"{len(stale)} alarms on {NAMESPACE}/StaleTickers, expected 1"):
        alarm, props = stale[0]
        (_, _, dims), = [m for m in alarm_metrics(props) if m[1] == "StaleTickers"]
        check({k: resolve(v, ctx.params) for k, v in dims.items()} == {STAGE_DIMENSION: "validate"}, f"{alarm}: dimensions {dims!r}, expected Stage=validate")
        check(breaches_above(ctx, props, 0), f"{alarm}: does not fire on StaleTickers > 0")
        check(props.get("Statistic") == "Maximum", f"{alarm}: statistic {props.get('Statistic')!r}, expected Maximum")
        check(
            props.get("TreatMissingData") == "breaching",
            f"{alarm}: TreatMissingData {props.get('TreatMissingData')!r}; a freshness check that did not run must alarm (breaching)",
        )
        try:
            window = int(ctx.resolve(props.get("Period"))) * int(ctx.resolve(props.get("EvaluationPeriods", 1)))
        except (TypeError, ValueError, Unresolvable):
            window = 0
        check(window >= 86400, f"{alarm}: evaluates {window} s; with one check a day, a shorter window has no value (missing = breaching) most of the day")
        SUMMARY["stale_window"] = window
    # The outputs an operator needs.
    outputs = ctx.cfn.get("Outputs") or {}
    fresh = [k for k, s in schedules(res).items() if is_freshness(s)]
    for key, target in [("AlarmTopicArn", topic), ("DashboardName", "Dashboard"), ("FreshnessScheduleName", fresh[0] if fresh else None)]:
        value = (outputs.get(key) or {}).get("Value")
        check(target and single_ref(value) == target, f"Outputs: {key} is {value!r}, expected a Ref to {target}")
    SUMMARY["alarms"] = len(all_alarms)
    SUMMARY["topic"] = topic


# ------------------------------------------------------------ schedules
WEEKDAYS = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}


def fires_every_day(expression: str) -> bool:
    """A cron(min hour dom month dow year) that fires on every day, or a
    rate of at most a day."""
    m = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)", expression)
    if m:
        dom, month, dow = m.group(3), m.group(4), m.group(5)
        return dom in ("*", "?") and month == "*" and (dow in ("*", "?") or dow.upper() in ("SUN-SAT", "1-7"))
    m = re.fullmatch(r"rate\((\d+) (minutes?|hours?|days?)\)", expression)
    if m:
        n, unit = int(m.group(1)), m.group(2).rstrip("s")
        return n * {"minute": 60, "hour": 3600, "day": 86400}[unit] <= 86400
    return False


def check_schedule_dead_letters(ctx: Context) -> None:
    """Three schedules: two invoking validate, the daily run and the
    freshness check (input {"check": "freshness"}, from the
    FreshnessScheduleExpression parameter, in ScheduleTimezone, daily so that
    the StaleTickers alarm's missing-data-breaching never fires for a day
    without a check), and the HTML report's, invoking the report function
    (from the ReportScheduleExpression parameter, on weekdays, after the
    daily run). Each has a dead-letter queue of its own, declared in
    the template, encrypted, keeping messages 14 days (the alarm on it is
    checked by check_alarms, the role's grant by security.check_iam)."""
    res, params = ctx.res, ctx.params
    all_schedules = schedules(res)
    fresh = [k for k, s in all_schedules.items() if is_freshness(s)]
    report = [k for k, s in all_schedules.items() if is_report(s)]
    check(
        len(all_schedules) == 3 and len(fresh) == 1 and len(report) == 1,
        f"schedules {sorted(all_schedules)}, expected the daily run, one freshness check and one report",
    )
    dlqs = schedule_dead_letter_queues(res)
    for name, s in all_schedules.items():
        target = s.get("Target") or {}
        want = schedule_target(s)
        check(single_ref(target.get("Arn")) == want, f"{name}: does not invoke {want}")
        queue = dlqs.get(name)
        if not check(queue, f"{name}: no DeadLetterConfig on its target (an invocation the scheduler gives up on is lost)"):
            continue
        q = res.get(queue) or {}
        if not check(q.get("Type") == "AWS::SQS::Queue", f"{name}: dead-letter queue {queue} is not an SQS queue of the template"):
            continue
        qp = q.get("Properties") or {}
        check(qp.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in qp, f"{queue}: not encrypted at rest")
        check(qp.get("MessageRetentionPeriod") == 1209600, f"{queue}: MessageRetentionPeriod {qp.get('MessageRetentionPeriod')!r}, expected 14 days")
        check(not qp.get("FifoQueue"), f"{queue}: EventBridge Scheduler dead-letter queues are standard queues")
        check(list(dlqs.values()).count(queue) == 1, f"{queue}: the dead-letter queue of more than one schedule")
        check(
            queue not in QUEUES and queue not in redrive_dead_letter_queues(res),
            f"{name}: dead-letter queue {queue} is a stage's queue; a redrive would hand a schedule event to a stage",
        )
        check((target.get("RetryPolicy") or {}).get("MaximumRetryAttempts") is not None, f"{name}: no RetryPolicy")
        check(referenced(s.get("ScheduleExpressionTimezone")) == {"ScheduleTimezone"}, f"{name}: time zone is not the ScheduleTimezone parameter")
        check(referenced(s.get("State")) == {"ScheduleState"}, f"{name}: State is not the ScheduleState parameter")
    SUMMARY["schedules"] = sorted(all_schedules)
    if len(fresh) != 1:
        return
    s = all_schedules[fresh[0]]
    check(referenced(s.get("ScheduleExpression")) == {"FreshnessScheduleExpression"}, f"{fresh[0]}: expression is not the FreshnessScheduleExpression parameter")
    expr = str(resolve(s.get("ScheduleExpression"), params))
    check(
        fires_every_day(expr),
        f"{fresh[0]}: default expression {expr!r} skips days; StaleTickersAlarm treats a day without a check as breaching, so it would alarm on those days",
    )
    daily = [k for k in all_schedules if k != fresh[0] and k not in report]
    hour = lambda e: (m.group(2) if (m := re.fullmatch(r"cron\((\S+) (\S+) .*\)", e)) else None)  # noqa: E731
    main_hour = hour(str(resolve(all_schedules[daily[0]].get("ScheduleExpression"), params))) if daily else None
    if daily:
        fresh_hour = hour(expr)
        check(
            main_hour is None or fresh_hour is None or (main_hour.isdigit() and fresh_hour.isdigit() and int(fresh_hour) > int(main_hour)),
            f"{fresh[0]}: by default at hour {fresh_hour}, not after the daily run (hour {main_hour})",
        )
    if len(report) == 1:
        r = all_schedules[report[0]]
        check(referenced(r.get("ScheduleExpression")) == {"ReportScheduleExpression"}, f"{report[0]}: expression is not the ReportScheduleExpression parameter")
        report_expr = str(resolve(r.get("ScheduleExpression"), params))
        m = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)", report_expr)
        check(bool(m) and m.group(5).upper() in ("MON-FRI", "2-6"), f"{report[0]}: default expression {report_expr!r} is not on weekdays")
        report_hour = m.group(2) if m else None
        check(
            main_hour is None or (report_hour or "").isdigit() and main_hour.isdigit() and int(report_hour) > int(main_hour),
            f"{report[0]}: by default at hour {report_hour}, not after the daily run (hour {main_hour})",
        )
        try:
            report_input = json.loads(str((r.get("Target") or {}).get("Input")))
        except json.JSONDecodeError:
            report_input = None
        check(report_input == {}, f"{report[0]}: input {report_input!r}, expected {{}} (every ticker with curated data)")


# ------------------------------------------------------------ local files
ENV_JSON = ROOT / "infra" / "local" / "env.json"
SAMCONFIG = ROOT / "samconfig.toml"
STACK_NAME = "market-data-pipeline"
# Declared in the template only for `sam local invoke` (AWS::NoValue: never
# set in AWS), and what env.json must give every function / the load function.
LOCAL_ONLY = {"AWS_ENDPOINT_URL": None, "WAREHOUSE_URL": "LoadFunction"}
NO_VALUE = {"Ref": "AWS::NoValue"}
# Named IAM resources need CAPABILITY_NAMED_IAM.
NAMED_IAM = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
}
MAX_STACK_NAME = 61  # FIFO queue names <stack>-transform-dlq.fifo are at most 80


def declared_variables(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Function logical id -> the variables the SAM template declares for it
    (Globals and its own), with their template values."""
    res = sam.get("Resources") or {}
    common = (((sam.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables") or {}
    out = {}
    for name, r in res.items():
        if r.get("Type") == "AWS::Serverless::Function":
            own = (((r.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {}
            out[name] = {**common, **own}
    return out


def check_local_files(ctx: Context) -> None:
    """infra/local/env.json (`sam local invoke --env-vars`): one entry per
    function of the template, named by its logical id, setting only variables
    the template declares for it (SAM ignores the others), all strings; every
    function reaches the local endpoint (AWS_ENDPOINT_URL), the load function
    the local Postgres (WAREHOUSE_URL, with WAREHOUSE_SECRET_ARN blank so the
    secret does not replace it). The local-only variables are AWS::NoValue in
    the template. samconfig.toml parses and deploys the stack
    market-data-pipeline with the capabilities the template needs,
    resolve_s3 and confirm_changeset; builds cached, in parallel, with beta
    features (rust-cargolambda)."""
    declared = declared_variables(ctx.sam)
    for var, fn in LOCAL_ONLY.items():
        owners = [f for f, variables in declared.items() if var in variables]
        check(owners, f"template.yaml: {var} is not declared, so `sam local invoke --env-vars` cannot set it")
        for f in owners:
            check(declared[f][var] == NO_VALUE, f"{f}: {var} is {declared[f][var]!r} in template.yaml; it is for sam local only (!Ref AWS::NoValue)")
        if fn:
            check(owners == [fn], f"template.yaml: {var} declared for {owners}, expected {fn} only")
    rel = shown(ENV_JSON)
    try:
        env = json.loads(ENV_JSON.read_text())
    except (OSError, json.JSONDecodeError) as e:
        check(False, f"{rel}: {e}")
        env = None
    if env is not None and check(isinstance(env, dict), f"{rel}: not a JSON object"):
        check(set(env) == set(declared), f"{rel}: entries {sorted(env)}, expected the template's functions {sorted(declared)}")
        for fn, variables in env.items():
            if fn not in declared or not check(isinstance(variables, dict), f"{rel}: {fn} is not an object of variables"):
                continue
            for var, value in variables.items():
                check(var in declared[fn], f"{rel}: {fn}.{var} is not declared for {fn} in template.yaml (SAM would ignore it)")
                check(isinstance(value, str), f"{rel}: {fn}.{var} is not a string")
            check(variables.get("AWS_ENDPOINT_URL", "").startswith("http"), f"{rel}: {fn} has no AWS_ENDPOINT_URL (it would reach AWS)")
            if "WAREHOUSE_URL" in variables and "WAREHOUSE_URL" in declared[fn]:
                check(variables.get("WAREHOUSE_SECRET_ARN") == "", f"{rel}: {fn} sets WAREHOUSE_URL but not WAREHOUSE_SECRET_ARN to \"\" (the secret would replace it)")
                check("sslmode=" in variables["WAREHOUSE_URL"], f"{rel}: {fn}.WAREHOUSE_URL names no sslmode (verify-full for a host that is not loopback)")
        SUMMARY["env_json"] = len(env)
    rel = shown(SAMCONFIG)
    try:
        config = tomllib.loads(SAMCONFIG.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        check(False, f"{rel}: {e}")
        return
    check("version" in config, f"{rel}: no version")
    default = config.get("default") or {}
    section = lambda name: (default.get(name) or {}).get("parameters") or {}  # noqa: E731
    glob, deploy, build = section("global"), section("deploy"), section("build")
    stack = deploy.get("stack_name", glob.get("stack_name"))
    check(stack == STACK_NAME, f"{rel}: stack_name {stack!r}, expected {STACK_NAME!r}")
    check(isinstance(stack, str) and len(stack) <= MAX_STACK_NAME, f"{rel}: stack_name longer than {MAX_STACK_NAME} characters (FIFO queue names)")
    caps = set(str(deploy.get("capabilities", "")).split()) if isinstance(deploy.get("capabilities"), str) else set(deploy.get("capabilities") or [])
    named = sorted(
        k for k, r in (ctx.sam.get("Resources") or {}).items() if NAMED_IAM.get(r.get("Type")) in (r.get("Properties") or {})
    )
    if named:
        check("CAPABILITY_NAMED_IAM" in caps, f"{rel}: capabilities {sorted(caps)}; {named} are named IAM resources (CAPABILITY_NAMED_IAM)")
    else:
        check(caps & {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"}, f"{rel}: capabilities {sorted(caps)}; the template creates IAM roles (CAPABILITY_IAM)")
    check(deploy.get("resolve_s3") is True, f"{rel}: deploy resolve_s3 is not true")
    check(deploy.get("confirm_changeset") is True, f"{rel}: deploy confirm_changeset is not true")
    for key in ("cached", "parallel", "beta_features"):
        check(build.get(key) is True, f"{rel}: build {key} is not true")
    overrides = str(deploy.get("parameter_overrides", ""))
    for name in re.findall(r"([A-Za-z0-9]+)=", overrides):
        check(name in (ctx.sam.get("Parameters") or {}), f"{rel}: parameter_overrides names {name}, not a parameter of template.yaml")
    SUMMARY["stack"] = stack
