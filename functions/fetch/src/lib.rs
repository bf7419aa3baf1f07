//! The fetch function: fetch messages → chart request → raw zone → transform message.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use mdp_chart::fetch_stage;
use mdp_core::messages::{FetchRequest, decode_message};
use mdp_core::queue::Queue;
use mdp_core::source::MarketDataSource;
use mdp_core::{Lake, StageError};
use mdp_lambda::{BatchContext, handle_batch, send_messages};

pub struct FetchFunction {
    pub lake: Lake,
    pub source: Arc<dyn MarketDataSource>,
    pub queue: Arc<dyn Queue>,
    pub transform_queue_url: String,
    pub batch: BatchContext,
}

impl FetchFunction {
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        handle_batch(event, &self.batch, |body| self.handle_message(body)).await
    }

    async fn handle_message(&self, body: String) -> Result<(), StageError> {
        let request: FetchRequest = decode_message(&body)?;
        let outcome = fetch_stage(self.source.as_ref(), &self.lake, &request).await?;
        if let Some(next) = outcome.next {
            send_messages(self.queue.as_ref(), &self.transform_queue_url, &[next]).await?;
        }
        Ok(())
    }
}
