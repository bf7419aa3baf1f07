//! The fetch function: fetch messages → chart request → raw zone → transform message.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use mdp_chart::fetch_stage;
use mdp_core::messages::{FetchRequest, decode_message};
use mdp_core::metrics::{Metric, Metrics, Stage};
use mdp_core::queue::Queue;
use mdp_core::source::MarketDataSource;
use mdp_core::{Lake, StageError};
use mdp_lambda::{BatchContext, handle_batch_metered, note_record, record_outcome, send_messages};

/// The `Stage` of this function's metrics and log lines.
pub const STAGE: Stage = Stage::Fetch;

/// Records of a batch handled at once by one invocation: one.
///
/// The request budget of a deployment is the event source mapping's
/// `MaximumConcurrency` (the template's `FetchMaxConcurrency`, default 5:
/// at most that many fetch functions run at once) × the records each one
/// handles at once. With 1 here, a deployment has at most
/// `FetchMaxConcurrency` chart requests in flight, which stays within
/// `MARKET_DATA_API_CONCURRENCY` (default 5) as long as `FetchMaxConcurrency`
/// does: 5 × 1 ≤ 5 by default. (The client's own semaphore bounds one
/// process; the mapping is what bounds the deployment.) One record at a time
/// also keeps one response body (at most `MARKET_DATA_MAX_RESPONSE_BYTES`)
/// in memory at a time in a 128 MB function.
pub const RECORDS_IN_FLIGHT: usize = 1;

pub struct FetchFunction {
    pub lake: Lake,
    pub source: Arc<dyn MarketDataSource>,
    pub queue: Arc<dyn Queue>,
    pub transform_queue_url: String,
    pub batch: BatchContext,
}

impl FetchFunction {
    /// One batch, its metrics dropped.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle_metered(event, &Metrics::new()).await
    }

    /// One batch, recording its metrics into `metrics` (the main flushes
    /// them as EMF after the invocation; a test reads them).
    pub async fn handle_metered(&self, event: SqsEvent, metrics: &Metrics) -> SqsBatchResponse {
        handle_batch_metered(event, &self.batch, STAGE, metrics, |body| {
            self.handle_message(body, metrics)
        })
        .await
    }

    async fn handle_message(&self, body: String, metrics: &Metrics) -> Result<(), StageError> {
        let request: FetchRequest = decode_message(&body)?;
        note_record(&request.run_id, &request.ticker, metrics);
        let work = async {
            let outcome = fetch_stage(self.source.as_ref(), &self.lake, &request).await?;
            if let Some(next) = &outcome.next {
                let next = std::slice::from_ref(next);
                send_messages(self.queue.as_ref(), &self.transform_queue_url, next).await?;
            }
            Ok::<_, StageError>(outcome)
        };
        let ledger = (&request.ticker, request.run_id.as_str());
        let outcome = record_outcome(&self.lake, ledger, STAGE, work.await).await?;
        metrics.count(STAGE, Metric::RowsFetched, outcome.bars_in_range as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::RECORDS_IN_FLIGHT;
    use mdp_core::config::DEFAULT_API_CONCURRENCY;

    /// `Default:` of a parameter of template.yaml.
    fn template_default(parameter: &str) -> usize {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
        let template = std::fs::read_to_string(path).unwrap();
        let start = template
            .find(&format!("\n  {parameter}:\n"))
            .unwrap_or_else(|| panic!("no parameter {parameter} in template.yaml"));
        template[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with("    "))
            .find_map(|l| l.trim().strip_prefix("Default:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no numeric default for {parameter}"))
    }

    #[test]
    fn a_deployment_stays_within_the_api_concurrency() {
        let functions_at_once = template_default("FetchMaxConcurrency");
        assert_eq!(RECORDS_IN_FLIGHT, 1);
        assert!(
            functions_at_once * RECORDS_IN_FLIGHT <= DEFAULT_API_CONCURRENCY,
            "{functions_at_once} functions × {RECORDS_IN_FLIGHT} records > {DEFAULT_API_CONCURRENCY}"
        );
    }
}
