"""Checks of what shows an operator how the pipeline is doing: the
functions' logging configuration and the CloudWatch dashboard, with what
they share with operations.py (the metric catalogue and the template
helpers).

The application metrics are CloudWatch Embedded Metric Format documents the
functions print: namespace NAMESPACE, one dimension STAGE_DIMENSION. Their
names are read from shared/core/src/metrics/mod.rs (the `Metric::X => "X"`
arms of Metric::name and the `Stage::X => "x"` arms of Stage::as_str), so
the dashboard and the alarms cannot name a metric the code does not emit;
EMITTED_METRICS is the fallback while that file does not exist. RunDuration
and the stage "run" are `mdp run`'s only (MDP_ONLY_*): no function emits
them.

Translated-template checks (run on what SAM deploys): check_logging,
check_dashboard (which reads what check_logging found). The alarms, the
schedules' dead-letter queues and the local files are in operations.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .cfn import ROOT, Context, Unresolvable, check, referenced, resolve
from .expected import FUNCTIONS, QUEUES, REPORT_FUNCTION

# ------------------------------------------------------------ the metrics
NAMESPACE = "MarketDataPipeline"
STAGE_DIMENSION = "Stage"
METRICS_RS = ROOT / "shared" / "core" / "src" / "metrics" / "mod.rs"
# The metrics the functions emit. MUST match shared/core/src/metrics/mod.rs
# (enum Metric, Metric::name): while that file exists, the names are read
# from it instead and this list is not used (so the two cannot drift).
EMITTED_METRICS = [
    "StageDuration",  # ms
    "RecordsHandled",
    "TransientFailures",
    "PermanentFailures",
    "DeadLettered",
    "RowsFetched",
    "RowsWritten",
    "BarsQuarantined",
    "QualityFindings",
    "RowsLoaded",
    "ChartApiLatency",  # ms
    "ChartApiRetries",
    "ChartApi429",
    "ColdStart",
    "TickersPlanned",
    "TickersCaughtUp",
    "TickersFailed",
    "StaleTickers",  # validate, freshness check
]
EMITTED_STAGES = ["validate", "fetch", "transform", "load"]
# Emitted by `mdp run` only (one process), never by a function: a dashboard
# or alarm of the deployed stack that names them would stay empty.
MDP_ONLY_METRICS = {"RunDuration"}
MDP_ONLY_STAGES = {"run"}

# What the catalogue was read from (for the summary line of run.main).
SUMMARY: dict[str, Any] = {}


def metric_catalogue() -> tuple[set[str], set[str], str]:
    """(metric names, Stage values) the functions emit, and where they come
    from: shared/core/src/metrics/mod.rs when it exists, else EMITTED_*."""
    if not METRICS_RS.exists():
        return set(EMITTED_METRICS), set(EMITTED_STAGES), f"the built-in list ({shown(METRICS_RS)} not found)"
    text = METRICS_RS.read_text()
    rel = shown(METRICS_RS)
    namespace = re.search(r'pub const NAMESPACE: &str = "([^"]*)"', text)
    dimension = re.search(r'pub const STAGE_DIMENSION: &str = "([^"]*)"', text)
    check(namespace and namespace.group(1) == NAMESPACE, f"{rel}: NAMESPACE is not {NAMESPACE!r} (the dashboard and alarms use it)")
    check(dimension and dimension.group(1) == STAGE_DIMENSION, f"{rel}: STAGE_DIMENSION is not {STAGE_DIMENSION!r}")
    names = set(re.findall(r'Metric::\w+\s*=>\s*"([A-Za-z0-9]+)"', text))
    stages = set(re.findall(r'Stage::\w+\s*=>\s*"([a-z]+)"', text))
    check(names, f"{rel}: no metric names found (Metric::X => \"X\" arms of Metric::name)")
    check(stages, f"{rel}: no stages found (Stage::X => \"x\" arms of Stage::as_str)")
    return names - MDP_ONLY_METRICS, stages - MDP_ONLY_STAGES, rel


# ------------------------------------------------------------ helpers
def shown(path: Any) -> str:
    """A path as messages show it: relative to the repository when inside."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def find_in_map(node: Any, template: dict[str, Any], params: dict[str, Any]) -> Any:
    """Replaces every Fn::FindInMap by its value (cfn.resolve does not know
    it) with these parameter values."""
    if isinstance(node, list):
        return [find_in_map(v, template, params) for v in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::FindInMap"}:
        name, first, second = (resolve(find_in_map(a, template, params), params) for a in node["Fn::FindInMap"])
        try:
            return template["Mappings"][name][first][second]
        except (KeyError, TypeError) as e:
            raise Unresolvable(f"Fn::FindInMap {name}/{first}/{second}") from e
    return {k: find_in_map(v, template, params) for k, v in node.items()}


def value_of(ctx: Context, node: Any, params: dict[str, Any] | None = None) -> Any:
    params = ctx.params if params is None else params
    return ctx.resolve(find_in_map(node, ctx.cfn or ctx.sam, params), params)


def find_refs(node: Any) -> Any:
    """A FindInMap's keys as plain values, so referenced() sees the Refs in them."""
    if isinstance(node, dict) and set(node) == {"Fn::FindInMap"}:
        return node["Fn::FindInMap"]
    return node


def single_ref(node: Any) -> str | None:
    ids = referenced(node)
    return next(iter(ids)) if len(ids) == 1 else None


def schedules(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v.get("Properties") or {} for k, v in res.items() if v["Type"] == "AWS::Scheduler::Schedule"}


FRESHNESS_INPUT = {"check": "freshness"}


def is_freshness(schedule: dict[str, Any]) -> bool:
    """The freshness check's schedule: its input is FRESHNESS_INPUT."""
    try:
        return json.loads(str((schedule.get("Target") or {}).get("Input"))) == FRESHNESS_INPUT
    except json.JSONDecodeError:
        return False


def is_report(schedule: dict[str, Any]) -> bool:
    """The HTML report's schedule: it invokes the report function."""
    return REPORT_FUNCTION in referenced((schedule.get("Target") or {}).get("Arn"))


def schedule_target(schedule: dict[str, Any]) -> str:
    """The function a schedule must invoke."""
    return REPORT_FUNCTION if is_report(schedule) else "ValidateFunction"


def schedule_dead_letter_queues(res: dict[str, Any]) -> dict[str, str]:
    """Schedule logical id -> the logical id of its dead-letter queue."""
    out = {}
    for name, s in schedules(res).items():
        queue = single_ref(((s.get("Target") or {}).get("DeadLetterConfig") or {}).get("Arn"))
        if queue:
            out[name] = queue
    return out


def redrive_dead_letter_queues(res: dict[str, Any]) -> set[str]:
    out = set()
    for r in res.values():
        if r["Type"] == "AWS::SQS::Queue":
            target = single_ref(((r.get("Properties") or {}).get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
            if target:
                out.add(target)
    return out


# ------------------------------------------------------------ logging
LAMBDA_APP_LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]  # most to least detail
LAMBDA_SYSTEM_LEVELS = ["DEBUG", "INFO", "WARN"]


def check_logging(ctx: Context) -> None:
    """Every function: LoggingConfig with LogFormat JSON, its own log group,
    ApplicationLogLevel from the LogLevel parameter and never stricter than
    INFO (Lambda gives a line without "level", such as an EMF document, the
    level INFO: a stricter level would drop the metrics), SystemLogLevel a
    level Lambda accepts, from a parameter."""
    declared = ctx.sam.get("Parameters") or {}
    log_levels = declared.get("LogLevel", {}).get("AllowedValues") or [ctx.params.get("LogLevel")]
    for name, spec in FUNCTIONS.items():
        fn = ctx.res.get(name)
        if not fn:
            continue
        lc = fn["Properties"].get("LoggingConfig") or {}
        if not check(lc, f"{name}: no LoggingConfig"):
            continue
        check(lc.get("LogFormat") == "JSON", f"{name}: LoggingConfig.LogFormat is {lc.get('LogFormat')!r}, expected JSON")
        check(single_ref(lc.get("LogGroup")) == spec["log_group"], f"{name}: LoggingConfig.LogGroup is not {spec['log_group']}")
        app = lc.get("ApplicationLogLevel")
        check("LogLevel" in referenced(find_refs(app)), f"{name}: ApplicationLogLevel does not come from the LogLevel parameter")
        for level in log_levels:
            try:
                got = value_of(ctx, app, dict(ctx.params, LogLevel=level))
            except Unresolvable as e:
                check(False, f"{name}: ApplicationLogLevel not understood with LogLevel={level} ({e})")
                continue
            if not check(got in LAMBDA_APP_LEVELS, f"{name}: ApplicationLogLevel {got!r} with LogLevel={level} is not a Lambda level"):
                continue
            check(
                LAMBDA_APP_LEVELS.index(got) <= LAMBDA_APP_LEVELS.index("INFO"),
                f"{name}: ApplicationLogLevel {got} with LogLevel={level} drops INFO lines, and so the EMF metric documents (Lambda gives a line without \"level\" the level INFO)",
            )
            if level == ctx.params.get("LogLevel"):
                check(got == "INFO", f"{name}: ApplicationLogLevel is {got} by default, expected INFO")
        system = lc.get("SystemLogLevel")
        if not check(system is not None, f"{name}: no LoggingConfig.SystemLogLevel"):
            continue
        ref = single_ref(system)
        values = declared.get(ref, {}).get("AllowedValues") if ref else [system]
        check(
            values and all(v in LAMBDA_SYSTEM_LEVELS for v in values),
            f"{name}: SystemLogLevel values {values!r} are not all Lambda system levels {LAMBDA_SYSTEM_LEVELS}",
        )
        try:
            SUMMARY.setdefault("system_log_levels", {})[name] = value_of(ctx, system)
        except Unresolvable as e:
            check(False, f"{name}: SystemLogLevel not understood ({e})")


def check_stage_dimension(ctx: Context, where: str, metric: str, dims: dict[str, Any], stages: set[str]) -> None:
    try:
        values = {k: resolve(v, ctx.params) for k, v in dims.items()}
    except Unresolvable:
        values = dims
    check(
        set(values) == {STAGE_DIMENSION} and values.get(STAGE_DIMENSION) in stages,
        f"{where}: {NAMESPACE}/{metric} with dimensions {values!r}; the functions emit exactly one, {STAGE_DIMENSION} in {sorted(stages)}",
    )

# ------------------------------------------------------------ dashboard
def dashboard_rows(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str], str]]:
    """(namespace, metric, dimensions, statistic) of each metric row of a
    metric widget; rows must be spelled out (no "." or "..." shorthand)."""
    props = widget.get("properties") or {}
    out = []
    for row in props.get("metrics") or []:
        options = row[-1] if row and isinstance(row[-1], dict) else {}
        items = row[:-1] if options else row
        if not items and "expression" in options:
            out.append(("", "", {"expression": options["expression"]}, ""))
            continue
        if any(i in (".", "...") for i in items) or len(items) < 2 or len(items) % 2:
            out.append(("?", json.dumps(row), {}, ""))
            continue
        dims = {str(items[i]): str(items[i + 1]) for i in range(2, len(items), 2)}
        out.append((str(items[0]), str(items[1]), dims, str(options.get("stat") or props.get("stat") or "Average")))
    return out


def check_dashboard(ctx: Context) -> None:
    """One dashboard whose body (Fn::Sub) is JSON; every metric it names in
    NAMESPACE is one the functions emit, with the one Stage dimension; it
    shows the panels of the old Grafana board: stage duration p50 and p95,
    records handled, chart API latency p95, rows fetched/written/loaded,
    every stage queue's depth and oldest message, every dead-letter queue,
    every function's errors, throttles and concurrency, and memory used from
    the functions' platform.report records (which need SystemLogLevel INFO
    or DEBUG by default)."""
    res = ctx.res
    names, stages, source = metric_catalogue()
    SUMMARY["metrics_source"] = source
    boards = {k: v.get("Properties") or {} for k, v in res.items() if v["Type"] == "AWS::CloudWatch::Dashboard"}
    if not check(len(boards) == 1, f"dashboards {sorted(boards)}, expected one"):
        return
    (board, props), = boards.items()
    check(isinstance(props.get("DashboardBody"), dict) and "Fn::Sub" in props["DashboardBody"], f"{board}: DashboardBody is not built with Fn::Sub")
    try:
        body = json.loads(ctx.resolve(props.get("DashboardBody")))
    except (json.JSONDecodeError, TypeError, Unresolvable) as e:
        check(False, f"{board}: DashboardBody is not JSON after substitution: {e}")
        return
    widgets = body.get("widgets") or []
    SUMMARY["widgets"] = len(widgets)
    shown: dict[tuple[str, str], set[str]] = {}  # (namespace, metric) -> dimension values / stats
    stats: dict[str, set[str]] = {}
    queue_names = {f"<{k}.QueueName>": k for k, v in res.items() if v["Type"] == "AWS::SQS::Queue"}
    functions = {f"<{k}>": k for k, v in res.items() if v["Type"] == "AWS::Lambda::Function"}
    logs = []
    for i, w in enumerate(widgets):
        title = (w.get("properties") or {}).get("title", f"widget {i}")
        if w.get("type") == "log":
            logs.append(w)
            continue
        if w.get("type") != "metric":
            continue
        for ns, metric, dims, stat in dashboard_rows(w):
            where = f"{board}: {title!r}"
            if ns == "?":
                check(False, f"{where}: write the metric row {metric} in full (namespace, name, dimension pairs)")
                continue
            if ns == "":
                for m in re.findall(rf"{NAMESPACE}.*?MetricName\s*=\s*\\?\"?([A-Za-z0-9]+)", dims["expression"]):
                    check(m in names, f"{where}: expression names {NAMESPACE}/{m}, which the functions do not emit")
                continue
            if ns == NAMESPACE:
                check(metric in names, f"{where}: {ns}/{metric} is not a metric the functions emit (known: {sorted(names)})")
                check_stage_dimension(ctx, where, metric, dims, stages)
                shown.setdefault((ns, metric), set()).add(dims.get(STAGE_DIMENSION, ""))
                stats.setdefault(metric, set()).add(stat)
            elif ns == "AWS/SQS":
                queue = queue_names.get(dims.get("QueueName", ""))
                check(set(dims) == {"QueueName"} and queue, f"{where}: {ns}/{metric} of {dims!r}, not a queue of this stack")
                shown.setdefault((ns, metric), set()).add(queue or "")
            elif ns == "AWS/Lambda":
                fn = functions.get(dims.get("FunctionName", ""))
                check(set(dims) == {"FunctionName"} and fn, f"{where}: {ns}/{metric} of {dims!r}, not a function of this stack")
                shown.setdefault((ns, metric), set()).add(fn or "")
    # The panels of the old board.
    for metric, want in [("StageDuration", {"p50", "p95"}), ("ChartApiLatency", {"p95"})]:
        check(want <= stats.get(metric, set()), f"{board}: no {metric} {sorted(want - stats.get(metric, set()))} panel")
    for metric in ("RecordsHandled", "RowsFetched", "RowsWritten", "RowsLoaded"):
        check((NAMESPACE, metric) in shown, f"{board}: no {metric} panel")
    check({"fetch", "transform", "load"} <= shown.get((NAMESPACE, "RecordsHandled"), set()), f"{board}: RecordsHandled not shown for every SQS stage")
    stage_queues = set(QUEUES)
    dlqs = redrive_dead_letter_queues(res) | set(schedule_dead_letter_queues(res).values())
    for metric, want in [
        ("ApproximateNumberOfMessagesVisible", stage_queues | dlqs),
        ("ApproximateAgeOfOldestMessage", stage_queues),
    ]:
        missing = want - shown.get(("AWS/SQS", metric), set())
        check(not missing, f"{board}: AWS/SQS {metric} not shown for {sorted(missing)}")
    for metric in ("Errors", "Throttles", "ConcurrentExecutions"):
        missing = set(FUNCTIONS) - shown.get(("AWS/Lambda", metric), set())
        check(not missing, f"{board}: AWS/Lambda {metric} not shown for {sorted(missing)}")
    # Memory: Logs Insights over every function's platform.report records.
    memory = [w for w in logs if "maxMemoryUsed" in str((w.get("properties") or {}).get("query"))]
    if check(memory, f"{board}: no Logs Insights widget of the functions' memory used (platform.report maxMemoryUsedMB)"):
        query = str(memory[0]["properties"]["query"])
        groups = set(re.findall(r"SOURCE '([^']+)'", query))
        want = {f"<{spec['log_group']}>" for spec in FUNCTIONS.values()}
        check(groups == want, f"{board}: the memory query reads {sorted(groups)}, expected every function's log group {sorted(want)}")
        check(
            "platform.report" in query and "record.metrics.maxMemoryUsedMB" in query,
            f"{board}: the memory query must read platform.report records (LogFormat JSON: record.metrics.maxMemoryUsedMB, not the text REPORT line's @maxMemoryUsed)",
        )
        for fn, level in sorted((SUMMARY.get("system_log_levels") or {}).items()):
            check(
                level in ("INFO", "DEBUG"),
                f"{board}: the memory widget reads platform.report, which Lambda writes at SystemLogLevel INFO; {fn}'s default is {level!r}",
            )
