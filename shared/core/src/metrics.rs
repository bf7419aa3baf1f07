//! Metrics as CloudWatch Embedded Metric Format (EMF) documents: one JSON
//! object per line, which CloudWatch Logs turns into metrics when a Lambda
//! function writes it to stdout. No SDK and no `PutMetricData`: a small
//! writer of our own, checked against the specification
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
//!
//! - Namespace [`NAMESPACE`]; one dimension set, `["Stage"]`, whose value
//!   is a [`Stage`]. Tickers, run ids and request ids are never dimensions
//!   (each distinct value would be a new metric, billed): they go in as
//!   plain top-level properties, for Logs Insights.
//! - The metric names and units are the [`Metric`] enum: the dashboard and
//!   alarms of `template.yaml` use exactly these names.
//! - [`Metrics`] collects counters and value lists (a cloned handle, a
//!   mutex inside); [`Metrics::flush`] writes them as EMF and starts afresh.
//!   A function keeps one per process in a [`FunctionMetrics`], which counts
//!   cold starts and flushes after each invocation; `mdp run` keeps one per
//!   run and reads it back with [`Metrics::summary`] or [`Metrics::write_emf`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Number, Value};
use tracing::Instrument;

/// The CloudWatch namespace of every metric of the pipeline.
pub const NAMESPACE: &str = "MarketDataPipeline";
/// The one dimension: which stage the values belong to.
pub const STAGE_DIMENSION: &str = "Stage";
/// The most metrics one EMF document may declare (specification).
pub const MAX_METRICS_PER_DOCUMENT: usize = 100;
/// The most values one metric may carry in one EMF document (specification).
pub const MAX_VALUES_PER_METRIC: usize = 100;

/// Every unit CloudWatch accepts (the `Unit` of a `MetricDatum`).
pub const CLOUDWATCH_UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The value of the `Stage` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Validate,
    Fetch,
    Transform,
    Load,
    /// A whole `mdp run` (its tickers and its duration).
    Run,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Validate,
        Stage::Fetch,
        Stage::Transform,
        Stage::Load,
        Stage::Run,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Fetch => "fetch",
            Stage::Transform => "transform",
            Stage::Load => "load",
            Stage::Run => "run",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The units the pipeline's metrics use (a subset of [`CLOUDWATCH_UNITS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Milliseconds,
    Count,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Count => "Count",
        }
    }
}

/// Every metric the pipeline publishes. A counter is summed into one value
/// per document; the others keep one value per observation (CloudWatch
/// computes their statistics and percentiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Time of one record's stage work (functions), of one ticker's stage (`mdp run`).
    StageDuration,
    /// Records of an SQS batch handled (FIFO records held back behind a
    /// failed one of their ticker are not).
    RecordsHandled,
    /// Records that failed transiently: reported for redelivery.
    TransientFailures,
    /// Records that failed permanently (panics included): never retried.
    PermanentFailures,
    /// Permanent failures sent to the stage's dead-letter queue (fewer than
    /// `PermanentFailures` when the dead-letter queue could not be reached).
    DeadLettered,
    /// Bars with a close inside the requested range (fetch).
    RowsFetched,
    /// Curated rows written to the lake (transform).
    RowsWritten,
    /// Warehouse rows inserted or updated (load).
    RowsLoaded,
    /// Time of one HTTP attempt of the chart API, its body read.
    ChartApiLatency,
    /// Chart API attempts that were retries.
    ChartApiRetries,
    /// Chart API answers with HTTP 429.
    ChartApi429,
    /// 1 in the first invocation of a function process, 0 in the others.
    ColdStart,
    /// Tickers sent to fetch (validate), run through the stages (`mdp run`).
    TickersPlanned,
    /// Tickers whose warehouse was behind their lake and got a load.
    TickersCaughtUp,
    /// Tickers rejected as invalid or that could not be planned (validate),
    /// or that failed (`mdp run`).
    TickersFailed,
    /// Time of a whole `mdp run`.
    RunDuration,
    /// Tickers not up to date after the daily run (validate's freshness
    /// check; `template.yaml` alarms on it under `Stage=validate`).
    StaleTickers,
}

impl Metric {
    pub const ALL: [Metric; 17] = [
        Metric::StageDuration,
        Metric::RecordsHandled,
        Metric::TransientFailures,
        Metric::PermanentFailures,
        Metric::DeadLettered,
        Metric::RowsFetched,
        Metric::RowsWritten,
        Metric::RowsLoaded,
        Metric::ChartApiLatency,
        Metric::ChartApiRetries,
        Metric::ChartApi429,
        Metric::ColdStart,
        Metric::TickersPlanned,
        Metric::TickersCaughtUp,
        Metric::TickersFailed,
        Metric::RunDuration,
        Metric::StaleTickers,
    ];

    /// The CloudWatch metric name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::StageDuration => "StageDuration",
            Metric::RecordsHandled => "RecordsHandled",
            Metric::TransientFailures => "TransientFailures",
            Metric::PermanentFailures => "PermanentFailures",
            Metric::DeadLettered => "DeadLettered",
            Metric::RowsFetched => "RowsFetched",
            Metric::RowsWritten => "RowsWritten",
            Metric::RowsLoaded => "RowsLoaded",
            Metric::ChartApiLatency => "ChartApiLatency",
            Metric::ChartApiRetries => "ChartApiRetries",
            Metric::ChartApi429 => "ChartApi429",
            Metric::ColdStart => "ColdStart",
            Metric::TickersPlanned => "TickersPlanned",
            Metric::TickersCaughtUp => "TickersCaughtUp",
            Metric::TickersFailed => "TickersFailed",
            Metric::RunDuration => "RunDuration",
            Metric::StaleTickers => "StaleTickers",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Metric::StageDuration | Metric::ChartApiLatency | Metric::RunDuration => {
                Unit::Milliseconds
            }
            _ => Unit::Count,
        }
    }

    /// Summed into one value per document (else one value per observation).
    pub fn is_counter(self) -> bool {
        self.unit() == Unit::Count
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What was recorded of one metric of one stage.
#[derive(Debug, Clone, Default, PartialEq)]
struct Series {
    /// Counters: the sum; the others: every observation.
    values: Vec<f64>,
    /// Observations (a counter's additions).
    samples: usize,
}

#[derive(Debug, Default)]
struct Recorded {
    series: BTreeMap<(Stage, Metric), Series>,
    /// Top-level properties: each key's distinct values, in first-seen order.
    properties: BTreeMap<String, Vec<String>>,
}

/// Collects the metrics of an invocation (or of an `mdp run`). Cloning gives
/// another handle on the same values; safe to share across tasks and threads.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Recorded>>,
}

/// One metric of one stage, aggregated (see [`Metrics::summary`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSummary {
    pub stage: Stage,
    pub metric: Metric,
    /// Observations (a counter's additions, a distribution's values).
    pub samples: usize,
    /// A counter's total; the sum of a distribution's values.
    pub sum: f64,
    /// The smallest and largest value (a counter: its total).
    pub min: f64,
    pub max: f64,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `value`: added to a counter, appended to the others' values.
    /// A value that is not finite is dropped (JSON has no NaN).
    pub fn record(&self, stage: Stage, metric: Metric, value: f64) {
        if !value.is_finite() {
            return;
        }
        let mut recorded = self.lock();
        let series = recorded.series.entry((stage, metric)).or_default();
        series.samples += 1;
        if metric.is_counter() {
            match series.values.first_mut() {
                Some(total) => *total += value,
                None => series.values.push(value),
            }
        } else {
            series.values.push(value);
        }
    }

    /// Adds `n` to a counter (0 makes the metric appear, with 0, in the
    /// next document: alarms then see a value rather than missing data).
    pub fn count(&self, stage: Stage, metric: Metric, n: u64) {
        self.record(stage, metric, n as f64);
    }

    /// Records a duration in milliseconds, to the microsecond.
    pub fn time(&self, stage: Stage, metric: Metric, took: Duration) {
        self.record(stage, metric, took.as_micros() as f64 / 1000.0);
    }

    /// A top-level property of the next documents (`run_id`, `ticker`,
    /// `request_id`): a value seen again is kept once; several values are
    /// written comma-separated in first-seen order. Keys that would collide
    /// with the document's own members (`_aws`, `Stage`, a metric name)
    /// are ignored.
    pub fn property(&self, key: &str, value: &str) {
        if key == "_aws" || key == STAGE_DIMENSION || Metric::ALL.iter().any(|m| m.name() == key) {
            return;
        }
        let mut recorded = self.lock();
        let values = recorded.properties.entry(key.to_string()).or_default();
        if !values.iter().any(|v| v == value) {
            values.push(value.to_string());
        }
    }

    /// A counter's total, or the sum of a distribution's values (0 when nothing was recorded).
    pub fn total(&self, stage: Stage, metric: Metric) -> f64 {
        self.lock()
            .series
            .get(&(stage, metric))
            .map_or(0.0, |s| s.values.iter().sum())
    }

    /// A distribution's values in recording order (a counter: its total).
    pub fn values(&self, stage: Stage, metric: Metric) -> Vec<f64> {
        self.lock()
            .series
            .get(&(stage, metric))
            .map_or_else(Vec::new, |s| s.values.clone())
    }

    /// Every metric recorded, aggregated, by stage then metric.
    pub fn summary(&self) -> Vec<MetricSummary> {
        self.lock()
            .series
            .iter()
            .filter(|(_, s)| !s.values.is_empty())
            .map(|(&(stage, metric), s)| MetricSummary {
                stage,
                metric,
                samples: s.samples,
                sum: s.values.iter().sum(),
                min: s.values.iter().copied().fold(f64::INFINITY, f64::min),
                max: s.values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            })
            .collect()
    }

    /// Nothing recorded (properties aside).
    pub fn is_empty(&self) -> bool {
        self.lock().series.values().all(|s| s.values.is_empty())
    }

    /// The EMF documents of what was recorded, stamped `timestamp_ms`: per
    /// stage, as few documents as the limits allow (at most
    /// [`MAX_METRICS_PER_DOCUMENT`] metrics and [`MAX_VALUES_PER_METRIC`]
    /// values per metric in each), counters in the first.
    pub fn documents(&self, timestamp_ms: i64) -> Vec<Value> {
        let recorded = self.lock();
        let properties: Vec<(String, String)> = recorded
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.join(",")))
            .collect();
        let mut documents = Vec::new();
        for stage in Stage::ALL {
            let entries: Vec<Entry<'_>> = recorded
                .series
                .iter()
                .filter(|((of, _), s)| *of == stage && !s.values.is_empty())
                .map(|(&(_, metric), s)| Entry {
                    name: metric.name(),
                    unit: metric.unit().as_str(),
                    values: &s.values,
                })
                .collect();
            documents.extend(emf_documents(
                timestamp_ms,
                stage.as_str(),
                &entries,
                &properties,
                MAX_METRICS_PER_DOCUMENT,
            ));
        }
        documents
    }

    /// Writes the documents, one JSON object per line, stamped now; keeps
    /// what was recorded. Returns how many documents were written.
    pub fn write_emf(&self, out: &mut impl Write) -> io::Result<usize> {
        let documents = self.documents(now_ms());
        let mut text = String::new();
        for document in &documents {
            text.push_str(&document.to_string());
            text.push('\n');
        }
        // One write: lines of one flush are not interleaved with other output.
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(documents.len())
    }

    /// [`Metrics::write_emf`], then forgets everything recorded (properties
    /// included): the next flush writes only what comes after.
    pub fn flush(&self, out: &mut impl Write) -> io::Result<usize> {
        let written = self.write_emf(out)?;
        let mut recorded = self.lock();
        recorded.series.clear();
        recorded.properties.clear();
        Ok(written)
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One metric's values for [`emf_documents`].
struct Entry<'a> {
    name: &'a str,
    unit: &'a str,
    values: &'a [f64],
}

fn number(v: f64) -> Value {
    // Whole numbers as integers (counts read as counts); others as floats.
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::Number(Number::from(v as i64))
    } else {
        Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

/// The EMF documents of one stage's entries: document `i` holds the `i`-th
/// chunk of [`MAX_VALUES_PER_METRIC`] values of every metric that has one,
/// in groups of at most `max_metrics` metrics.
fn emf_documents(
    timestamp_ms: i64,
    stage: &str,
    entries: &[Entry<'_>],
    properties: &[(String, String)],
    max_metrics: usize,
) -> Vec<Value> {
    let rounds = entries
        .iter()
        .map(|e| e.values.len().div_ceil(MAX_VALUES_PER_METRIC))
        .max()
        .unwrap_or(0);
    let mut documents = Vec::new();
    for round in 0..rounds {
        let chunk_of = |e: &Entry<'_>| {
            e.values
                .chunks(MAX_VALUES_PER_METRIC)
                .nth(round)
                .map(<[f64]>::to_vec)
        };
        let in_round: Vec<(&Entry<'_>, Vec<f64>)> = entries
            .iter()
            .filter_map(|e| chunk_of(e).map(|chunk| (e, chunk)))
            .collect();
        for group in in_round.chunks(max_metrics.max(1)) {
            let mut root = Map::new();
            for (key, value) in properties {
                root.insert(key.clone(), Value::String(value.clone()));
            }
            root.insert(STAGE_DIMENSION.into(), Value::String(stage.into()));
            let mut definitions = Vec::with_capacity(group.len());
            for (entry, chunk) in group {
                definitions.push(serde_json::json!({"Name": entry.name, "Unit": entry.unit}));
                let value = match chunk.as_slice() {
                    [one] => number(*one),
                    many => Value::Array(many.iter().map(|v| number(*v)).collect()),
                };
                root.insert(entry.name.to_string(), value);
            }
            root.insert(
                "_aws".into(),
                serde_json::json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [[STAGE_DIMENSION]],
                        "Metrics": definitions,
                    }],
                }),
            );
            documents.push(Value::Object(root));
        }
    }
    documents
}

/// Why a JSON value is not a valid EMF document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid EMF document: {0}")]
pub struct EmfViolation(pub String);

/// Checks `document` against the rules of the EMF specification (not our
/// conventions): the `_aws` metadata with an integer millisecond
/// `Timestamp` and `CloudWatchMetrics` directives, each with a `Namespace`,
/// `Dimensions` (sets of at most 30 keys, each naming a top-level string
/// member) and `Metrics` (1 to 100 definitions with a `Name` naming a
/// top-level number or array of 1 to 100 numbers, and a `Unit` from
/// [`CLOUDWATCH_UNITS`]), no unknown member in those objects.
pub fn check_emf_document(document: &Value) -> Result<(), EmfViolation> {
    let bad = |why: String| Err(EmfViolation(why));
    let Some(root) = document.as_object() else {
        return bad("the document is not a JSON object".into());
    };
    let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
        return bad("no _aws object".into());
    };
    if let Some(key) = aws
        .keys()
        .find(|k| !["Timestamp", "CloudWatchMetrics"].contains(&k.as_str()))
    {
        return bad(format!("_aws has an unknown member {key}"));
    }
    match aws.get("Timestamp").and_then(Value::as_i64) {
        // Milliseconds: after 2001-09-09 (a value in seconds is far smaller).
        Some(ms) if ms >= 1_000_000_000_000 => {}
        other => {
            return bad(format!(
                "_aws.Timestamp is not epoch milliseconds: {other:?}"
            ));
        }
    }
    let Some(directives) = aws.get("CloudWatchMetrics").and_then(Value::as_array) else {
        return bad("_aws.CloudWatchMetrics is not an array".into());
    };
    if directives.is_empty() {
        return bad("_aws.CloudWatchMetrics is empty".into());
    }
    for directive in directives {
        let Some(directive) = directive.as_object() else {
            return bad("a metric directive is not an object".into());
        };
        if let Some(key) = directive
            .keys()
            .find(|k| !["Namespace", "Dimensions", "Metrics"].contains(&k.as_str()))
        {
            return bad(format!("a metric directive has an unknown member {key}"));
        }
        match directive.get("Namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns.chars().count() <= 255 => {}
            other => return bad(format!("bad Namespace {other:?}")),
        }
        let Some(sets) = directive.get("Dimensions").and_then(Value::as_array) else {
            return bad("Dimensions is not an array".into());
        };
        let mut dimension_keys = Vec::new();
        for set in sets {
            let Some(set) = set.as_array() else {
                return bad("a dimension set is not an array".into());
            };
            if set.len() > 30 {
                return bad(format!(
                    "a dimension set has {} keys (30 at most)",
                    set.len()
                ));
            }
            for key in set {
                let Some(key) = key.as_str() else {
                    return bad("a dimension key is not a string".into());
                };
                match root.get(key) {
                    Some(Value::String(v)) if !v.is_empty() && v.chars().count() <= 1024 => {}
                    other => {
                        return bad(format!("dimension {key} has no string value: {other:?}"));
                    }
                }
                dimension_keys.push(key);
            }
        }
        let Some(metrics) = directive.get("Metrics").and_then(Value::as_array) else {
            return bad("Metrics is not an array".into());
        };
        if metrics.is_empty() || metrics.len() > MAX_METRICS_PER_DOCUMENT {
            return bad(format!("{} metric definitions (1 to 100)", metrics.len()));
        }
        let mut names = Vec::new();
        for definition in metrics {
            let Some(definition) = definition.as_object() else {
                return bad("a metric definition is not an object".into());
            };
            if let Some(key) = definition
                .keys()
                .find(|k| !["Name", "Unit", "StorageResolution"].contains(&k.as_str()))
            {
                return bad(format!("a metric definition has an unknown member {key}"));
            }
            let Some(name) = definition.get("Name").and_then(Value::as_str) else {
                return bad("a metric definition has no Name".into());
            };
            if name.is_empty() || name.chars().count() > 255 {
                return bad(format!("bad metric name {name:?}"));
            }
            if names.contains(&name) {
                return bad(format!("metric {name} defined twice"));
            }
            if dimension_keys.contains(&name) {
                return bad(format!("metric {name} is also a dimension"));
            }
            names.push(name);
            match definition.get("Unit") {
                None => {}
                Some(Value::String(u)) if CLOUDWATCH_UNITS.contains(&u.as_str()) => {}
                Some(other) => return bad(format!("metric {name}: bad Unit {other}")),
            }
            match definition.get("StorageResolution") {
                None => {}
                Some(r) if r.as_i64() == Some(1) || r.as_i64() == Some(60) => {}
                Some(other) => return bad(format!("metric {name}: bad StorageResolution {other}")),
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if !values.is_empty()
                        && values.len() <= MAX_VALUES_PER_METRIC
                        && values.iter().all(Value::is_number) => {}
                other => {
                    return bad(format!(
                        "metric {name} has no number or array of 1 to 100 numbers: {other:?}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A function process's metrics across its invocations: the same collector
/// (the chart client of fetch records into it too), `ColdStart` counted,
/// and everything written as EMF after each invocation.
#[derive(Debug)]
pub struct FunctionMetrics {
    stage: Stage,
    metrics: Metrics,
    cold: AtomicBool,
}

impl FunctionMetrics {
    pub fn new(stage: Stage) -> FunctionMetrics {
        FunctionMetrics {
            stage,
            metrics: Metrics::new(),
            cold: AtomicBool::new(true),
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The collector the handler and the clients record into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs one invocation's `work` inside its log span (stage and request
    /// id on every line), with `ColdStart` (1 the first time, then 0) and the
    /// `request_id` property, then flushes what was recorded as EMF to `out`
    /// (stdout in Lambda). A failed write is logged, never fails the invocation.
    pub async fn invocation<T>(
        &self,
        request_id: &str,
        work: impl Future<Output = T>,
        out: &mut impl Write,
    ) -> T {
        let cold = self.cold.swap(false, Ordering::Relaxed);
        let span = crate::logging::invocation_span(self.stage, request_id);
        self.metrics
            .count(self.stage, Metric::ColdStart, u64::from(cold));
        self.metrics.property("request_id", request_id);
        let result = work.instrument(span.clone()).await;
        if let Err(e) = self.metrics.flush(out) {
            span.in_scope(|| tracing::warn!(error = %e, "could not write the metrics"));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    /// Our conventions on top of the specification: the namespace, the one
    /// `Stage` dimension with a known value, no ticker dimension, the names
    /// and units of [`Metric`].
    fn check_ours(document: &Value) {
        check_emf_document(document).unwrap();
        let directives = document["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], serde_json::json!([["Stage"]]));
        let stage = document["Stage"].as_str().unwrap();
        assert!(Stage::ALL.iter().any(|s| s.as_str() == stage), "{stage}");
        let text = directive["Dimensions"].to_string().to_lowercase();
        assert!(!text.contains("ticker") && !text.contains("run_id"));
        for definition in directive["Metrics"].as_array().unwrap() {
            let name = definition["Name"].as_str().unwrap();
            let metric = Metric::ALL
                .iter()
                .find(|m| m.name() == name)
                .unwrap_or_else(|| panic!("unknown metric {name}"));
            assert_eq!(definition["Unit"], metric.unit().as_str());
        }
    }

    fn parse_lines(bytes: &[u8]) -> Vec<Value> {
        std::str::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_metric_names_and_units_are_exactly_those_of_the_dashboard_and_alarms() {
        let expected = [
            ("StageDuration", "Milliseconds"),
            ("RecordsHandled", "Count"),
            ("TransientFailures", "Count"),
            ("PermanentFailures", "Count"),
            ("DeadLettered", "Count"),
            ("RowsFetched", "Count"),
            ("RowsWritten", "Count"),
            ("RowsLoaded", "Count"),
            ("ChartApiLatency", "Milliseconds"),
            ("ChartApiRetries", "Count"),
            ("ChartApi429", "Count"),
            ("ColdStart", "Count"),
            ("TickersPlanned", "Count"),
            ("TickersCaughtUp", "Count"),
            ("TickersFailed", "Count"),
            ("RunDuration", "Milliseconds"),
            ("StaleTickers", "Count"),
        ];
        let ours: Vec<(&str, &str)> = Metric::ALL
            .iter()
            .map(|m| (m.name(), m.unit().as_str()))
            .collect();
        assert_eq!(ours, expected);
        for (_, unit) in expected {
            assert!(CLOUDWATCH_UNITS.contains(&unit));
        }
        let stages: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(stages, ["validate", "fetch", "transform", "load", "run"]);
        assert_eq!(NAMESPACE, "MarketDataPipeline");
    }

    /// The dashboard and alarms of template.yaml name only metrics and
    /// stages this module writes (a renamed metric would leave a graph empty
    /// and an alarm without data).
    #[test]
    fn template_yaml_uses_only_the_metrics_and_stages_written_here() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
        let template = std::fs::read_to_string(path).unwrap();
        let after = |marker: &str| -> Vec<String> {
            template
                .split(marker)
                .skip(1)
                .map(|rest| {
                    rest.split(|c: char| !c.is_ascii_alphanumeric())
                        .next()
                        .unwrap()
                        .to_string()
                })
                .collect()
        };
        // Dashboard widgets: ["MarketDataPipeline", "Name", "Stage", "fetch", …].
        let mut names = after("\"MarketDataPipeline\", \"");
        // Alarms: `Namespace: MarketDataPipeline` then `MetricName: Name`.
        let lines: Vec<&str> = template.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() == "Namespace: MarketDataPipeline" {
                let name = lines[i + 1..]
                    .iter()
                    .take(3)
                    .find_map(|l| l.trim().strip_prefix("MetricName:"))
                    .unwrap_or_else(|| panic!("an alarm without MetricName at line {}", i + 1));
                names.push(name.trim().to_string());
            }
        }
        assert!(!names.is_empty(), "template.yaml names no metric of ours");
        for name in &names {
            assert!(
                Metric::ALL.iter().any(|m| m.name() == name),
                "template.yaml uses {name}, which no code writes"
            );
        }
        for stage in after("\"Stage\", \"") {
            assert!(
                Stage::ALL.iter().any(|s| s.as_str() == stage),
                "template.yaml uses Stage={stage}"
            );
        }
    }

    #[test]
    fn a_flush_writes_one_valid_document_per_line_per_stage() {
        let m = Metrics::new();
        m.count(Stage::Fetch, Metric::RecordsHandled, 1);
        m.count(Stage::Fetch, Metric::RecordsHandled, 2);
        m.count(Stage::Fetch, Metric::TransientFailures, 0);
        m.count(Stage::Fetch, Metric::RowsFetched, 233);
        m.time(
            Stage::Fetch,
            Metric::StageDuration,
            Duration::from_millis(12),
        );
        m.time(
            Stage::Fetch,
            Metric::StageDuration,
            Duration::from_micros(3_500),
        );
        m.time(
            Stage::Fetch,
            Metric::ChartApiLatency,
            Duration::from_millis(7),
        );
        m.count(Stage::Validate, Metric::TickersPlanned, 3);
        m.property("run_id", "20260101T000000Z-abcd");
        m.property("ticker", "MSFT");
        m.property("ticker", "NVDA");
        m.property("ticker", "MSFT");
        m.property("request_id", "req-1");
        // Would collide with the document's own members: ignored.
        m.property("Stage", "nope");
        m.property("RowsFetched", "nope");
        m.property("_aws", "nope");

        let mut out = Vec::new();
        assert_eq!(m.flush(&mut out).unwrap(), 2);
        assert!(out.ends_with(b"\n"));
        let documents = parse_lines(&out);
        assert_eq!(documents.len(), 2);
        for document in &documents {
            check_ours(document);
            // Properties for Logs Insights, top level, never dimensions.
            assert_eq!(document["run_id"], "20260101T000000Z-abcd");
            assert_eq!(document["ticker"], "MSFT,NVDA");
            assert_eq!(document["request_id"], "req-1");
            let ts = document["_aws"]["Timestamp"].as_i64().unwrap();
            assert!((now_ms() - ts).abs() < 60_000, "{ts}");
        }
        let validate = &documents[0];
        assert_eq!(validate["Stage"], "validate");
        assert_eq!(validate["TickersPlanned"], 3);
        let fetch = &documents[1];
        assert_eq!(fetch["Stage"], "fetch");
        assert_eq!(fetch["RecordsHandled"], 3, "counters are summed");
        assert_eq!(fetch["TransientFailures"], 0, "a zero counter is written");
        assert_eq!(fetch["RowsFetched"], 233);
        assert_eq!(fetch["StageDuration"], serde_json::json!([12, 3.5]));
        assert_eq!(fetch["ChartApiLatency"], 7, "a single value as a number");
        let declared: Vec<&str> = fetch["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            declared,
            [
                "StageDuration",
                "RecordsHandled",
                "TransientFailures",
                "RowsFetched",
                "ChartApiLatency"
            ]
        );

        // The flush forgot everything: nothing more to write.
        assert!(m.is_empty());
        let mut again = Vec::new();
        assert_eq!(m.flush(&mut again).unwrap(), 0);
        assert!(again.is_empty());
    }

    #[test]
    fn more_than_100_values_are_split_across_documents() {
        let m = Metrics::new();
        for i in 0..250 {
            m.record(Stage::Run, Metric::StageDuration, i as f64 + 0.5);
        }
        m.count(Stage::Run, Metric::TickersPlanned, 250);
        m.time(Stage::Run, Metric::RunDuration, Duration::from_secs(2));
        let documents = m.documents(T0);
        assert_eq!(documents.len(), 3);
        let mut seen = Vec::new();
        for (i, document) in documents.iter().enumerate() {
            check_ours(document);
            assert_eq!(document["_aws"]["Timestamp"], T0);
            let values = document["StageDuration"].as_array().unwrap();
            assert_eq!(values.len(), if i < 2 { 100 } else { 50 });
            seen.extend(values.iter().map(|v| v.as_f64().unwrap()));
            // Counters and single values once, in the first document.
            assert_eq!(document.get("TickersPlanned").is_some(), i == 0);
            assert_eq!(document.get("RunDuration").is_some(), i == 0);
        }
        let expected: Vec<f64> = (0..250).map(|i| i as f64 + 0.5).collect();
        assert_eq!(seen, expected, "every value once, in order");
        assert_eq!(m.values(Stage::Run, Metric::StageDuration).len(), 250);
    }

    #[test]
    fn more_than_100_metrics_are_split_across_documents() {
        let names: Vec<String> = (0..230).map(|i| format!("M{i}")).collect();
        let values: Vec<Vec<f64>> = (0..230).map(|i| vec![i as f64]).collect();
        let entries: Vec<Entry<'_>> = names
            .iter()
            .zip(&values)
            .map(|(name, values)| Entry {
                name,
                unit: "Count",
                values,
            })
            .collect();
        let documents = emf_documents(T0, "load", &entries, &[], MAX_METRICS_PER_DOCUMENT);
        let sizes: Vec<usize> = documents
            .iter()
            .map(|d| {
                check_emf_document(d).unwrap();
                d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, [100, 100, 30]);
        let mut written: Vec<String> = documents
            .iter()
            .flat_map(|d| {
                d.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| k.starts_with('M'))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        written.sort();
        let mut expected = names.clone();
        expected.sort();
        assert_eq!(written, expected);
    }

    #[test]
    fn the_checker_refuses_what_the_specification_forbids() {
        let good = serde_json::json!({
            "_aws": {"Timestamp": T0, "CloudWatchMetrics": [{
                "Namespace": NAMESPACE, "Dimensions": [["Stage"]],
                "Metrics": [{"Name": "RowsLoaded", "Unit": "Count"}]}]},
            "Stage": "load", "RowsLoaded": 5
        });
        check_emf_document(&good).unwrap();
        let broken = |change: &dyn Fn(&mut Value)| {
            let mut doc = good.clone();
            change(&mut doc);
            check_emf_document(&doc).unwrap_err()
        };
        broken(&|d| {
            d.as_object_mut().unwrap().remove("_aws");
        });
        broken(&|d| d["_aws"]["Timestamp"] = serde_json::json!(T0 / 1000));
        broken(&|d| d["_aws"]["Timestamp"] = serde_json::json!("now"));
        broken(&|d| d["_aws"]["CloudWatchMetrics"] = serde_json::json!([]));
        broken(&|d| {
            d["_aws"]["CloudWatchMetrics"][0]
                .as_object_mut()
                .unwrap()
                .remove("Namespace");
        });
        broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = serde_json::json!(["Stage"]));
        broken(&|d| {
            d.as_object_mut().unwrap().remove("Stage");
        });
        broken(&|d| d["Stage"] = serde_json::json!(3));
        broken(&|d| {
            d.as_object_mut().unwrap().remove("RowsLoaded");
        });
        broken(&|d| d["RowsLoaded"] = serde_json::json!("5"));
        broken(&|d| d["RowsLoaded"] = serde_json::json!([]));
        broken(&|d| d["RowsLoaded"] = serde_json::json!(vec![1; 101]));
        broken(&|d| d["RowsLoaded"] = serde_json::json!([1, "2"]));
        broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Rows".into());
        broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Colour"] = "red".into());
        broken(&|d| {
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"] =
                serde_json::json!(vec![serde_json::json!({"Name": "RowsLoaded"}); 101]);
        });
        broken(&|d| {
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"] =
                serde_json::json!([{"Name": "RowsLoaded"}, {"Name": "RowsLoaded"}]);
        });
        broken(&|d| {
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = serde_json::json!([["RowsLoaded"]])
        });
    }

    #[test]
    fn values_json_cannot_hold_are_dropped_and_summaries_aggregate() {
        let m = Metrics::new();
        m.record(Stage::Load, Metric::StageDuration, f64::NAN);
        m.record(Stage::Load, Metric::StageDuration, f64::INFINITY);
        assert!(m.is_empty());
        m.record(Stage::Load, Metric::StageDuration, 4.0);
        m.record(Stage::Load, Metric::StageDuration, 1.0);
        m.count(Stage::Load, Metric::RowsLoaded, 10);
        m.count(Stage::Load, Metric::RowsLoaded, 5);
        assert_eq!(m.total(Stage::Load, Metric::RowsLoaded), 15.0);
        assert_eq!(m.total(Stage::Fetch, Metric::RowsFetched), 0.0);
        assert_eq!(
            m.summary(),
            [
                MetricSummary {
                    stage: Stage::Load,
                    metric: Metric::StageDuration,
                    samples: 2,
                    sum: 5.0,
                    min: 1.0,
                    max: 4.0,
                },
                MetricSummary {
                    stage: Stage::Load,
                    metric: Metric::RowsLoaded,
                    samples: 2,
                    sum: 15.0,
                    min: 15.0,
                    max: 15.0,
                },
            ]
        );
        // write_emf keeps the values (mdp run may print them and read them).
        let mut out = Vec::new();
        assert_eq!(m.write_emf(&mut out).unwrap(), 1);
        assert_eq!(m.total(Stage::Load, Metric::RowsLoaded), 15.0);
    }

    #[test]
    fn handles_share_one_collector_across_threads() {
        let m = Metrics::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let m = m.clone();
                s.spawn(move || {
                    for _ in 0..1000 {
                        m.count(Stage::Fetch, Metric::RecordsHandled, 1);
                    }
                });
            }
        });
        assert_eq!(m.total(Stage::Fetch, Metric::RecordsHandled), 4000.0);
    }

    #[tokio::test]
    async fn a_function_counts_its_cold_start_once_and_flushes_after_each_invocation() {
        let function = FunctionMetrics::new(Stage::Transform);
        let mut out = Vec::new();
        for request in ["req-1", "req-2"] {
            let answer = function
                .invocation(
                    request,
                    async {
                        function
                            .metrics()
                            .count(Stage::Transform, Metric::RowsWritten, 7);
                        42
                    },
                    &mut out,
                )
                .await;
            assert_eq!(answer, 42);
        }
        let documents = parse_lines(&out);
        assert_eq!(documents.len(), 2);
        for (document, (request, cold)) in documents.iter().zip([("req-1", 1), ("req-2", 0)]) {
            check_ours(document);
            assert_eq!(document["Stage"], "transform");
            assert_eq!(document["request_id"], request);
            assert_eq!(document["ColdStart"], cold);
            assert_eq!(document["RowsWritten"], 7, "each invocation its own values");
        }
    }
}
