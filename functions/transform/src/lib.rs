//! The transform function: transform messages → curated partitions → load message.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use mdp_core::config::ParquetCompression;
use mdp_core::messages::{TransformRequest, decode_message, run_started_at};
use mdp_core::metrics::{Metric, Metrics, Stage};
use mdp_core::queue::Queue;
use mdp_core::{Lake, StageError};
use mdp_lambda::{BatchContext, handle_batch_metered, note_record, record_outcome, send_messages};
use mdp_transform::{lake_now, transform_stage};

/// The `Stage` of this function's metrics and log lines.
pub const STAGE: Stage = Stage::Transform;

pub struct TransformFunction {
    pub lake: Lake,
    pub compression: ParquetCompression,
    pub queue: Arc<dyn Queue>,
    pub load_queue_url: String,
    pub batch: BatchContext,
}

impl TransformFunction {
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
        let request: TransformRequest = decode_message(&body)?;
        note_record(&request.run_id, &request.ticker, metrics);
        // The run's start stamps new rows, so a redelivered copy writes the same rows.
        let now = run_started_at(&request.run_id).unwrap_or_else(lake_now);
        let work = async {
            let outcome = transform_stage(&self.lake, &request, self.compression, now).await?;
            if let Some(next) = &outcome.next {
                send_messages(
                    self.queue.as_ref(),
                    &self.load_queue_url,
                    std::slice::from_ref(next),
                )
                .await?;
            }
            Ok::<_, StageError>(outcome)
        };
        let ledger = (&request.ticker, request.run_id.as_str());
        let outcome = record_outcome(&self.lake, ledger, STAGE, work.await).await?;
        metrics.count(STAGE, Metric::RowsWritten, outcome.rows_written);
        metrics.count(
            STAGE,
            Metric::BarsQuarantined,
            outcome.bars_quarantined as u64,
        );
        metrics.count(
            STAGE,
            Metric::QualityFindings,
            outcome.findings_recorded as u64,
        );
        Ok(())
    }
}
