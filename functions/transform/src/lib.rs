//! The transform function: transform messages → curated partitions → load message.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use mdp_core::config::ParquetCompression;
use mdp_core::messages::{TransformRequest, decode_message, run_started_at};
use mdp_core::queue::Queue;
use mdp_core::{Lake, StageError};
use mdp_lambda::{BatchContext, handle_batch, send_messages};
use mdp_transform::{lake_now, transform_stage};

pub struct TransformFunction {
    pub lake: Lake,
    pub compression: ParquetCompression,
    pub queue: Arc<dyn Queue>,
    pub load_queue_url: String,
    pub batch: BatchContext,
}

impl TransformFunction {
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        handle_batch(event, &self.batch, |body| self.handle_message(body)).await
    }

    async fn handle_message(&self, body: String) -> Result<(), StageError> {
        let request: TransformRequest = decode_message(&body)?;
        // The run's start stamps new rows, so a redelivered copy writes the same rows.
        let now = run_started_at(&request.run_id).unwrap_or_else(lake_now);
        let outcome = transform_stage(&self.lake, &request, self.compression, now).await?;
        if let Some(next) = outcome.next {
            send_messages(self.queue.as_ref(), &self.load_queue_url, &[next]).await?;
        }
        Ok(())
    }
}
