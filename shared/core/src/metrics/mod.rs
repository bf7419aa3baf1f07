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
//!
//! The module is split by concern: this file has the names ([`Stage`],
//! [`Metric`], [`Unit`]) and the [`Metrics`] collector; `emf` writes its
//! documents, `check` checks a document against the specification
//! ([`check_emf_document`]) and `function` keeps a function's collector
//! ([`FunctionMetrics`]). `infra/template_check/observability.py` reads
//! the names from this file (the arms of `Metric::name` and
//! `Stage::as_str`): keep them here.

mod check;
mod emf;
mod function;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

pub use check::{EmfViolation, check_emf_document};
use emf::{Entry, emf_documents, now_ms};
pub use function::FunctionMetrics;

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
    /// Bars the data-quality gate kept out of the curated zone (transform).
    BarsQuarantined,
    /// Soft-rule quality findings about the bars a transform looked at.
    QualityFindings,
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
    pub const ALL: [Metric; 19] = [
        Metric::StageDuration,
        Metric::RecordsHandled,
        Metric::TransientFailures,
        Metric::PermanentFailures,
        Metric::DeadLettered,
        Metric::RowsFetched,
        Metric::RowsWritten,
        Metric::BarsQuarantined,
        Metric::QualityFindings,
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
            Metric::BarsQuarantined => "BarsQuarantined",
            Metric::QualityFindings => "QualityFindings",
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
