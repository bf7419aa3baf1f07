//! The load function: load messages → warehouse.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use mdp_core::config::LoadStrategy;
use mdp_core::messages::{LoadRequest, decode_message};
use mdp_core::metrics::{Metric, Metrics, Stage};
use mdp_core::{Lake, StageError};
use mdp_lambda::{BatchContext, handle_batch_metered, note_record, record_outcome};
use mdp_warehouse::{WarehouseLoader, load_stage};

/// The `Stage` of this function's metrics and log lines.
pub const STAGE: Stage = Stage::Load;

pub struct LoadFunction {
    pub lake: Lake,
    pub warehouse: Arc<dyn WarehouseLoader>,
    pub strategy: LoadStrategy,
    pub batch: BatchContext,
}

impl LoadFunction {
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
        let request: LoadRequest = decode_message(&body)?;
        note_record(&request.run_id, &request.ticker, metrics);
        let result = load_stage(&self.lake, self.warehouse.as_ref(), &request, self.strategy).await;
        let ledger = (&request.ticker, request.run_id.as_str());
        let report = record_outcome(&self.lake, ledger, STAGE, result).await?;
        metrics.count(STAGE, Metric::RowsLoaded, report.rows_loaded());
        Ok(())
    }
}
