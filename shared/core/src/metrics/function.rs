//! A function process's metrics: [`FunctionMetrics`] keeps one collector
//! across the invocations of a Lambda process, counts `ColdStart` and flushes
//! the EMF documents to stdout after each invocation.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Instrument;

use super::{Metric, Metrics, Stage};

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
