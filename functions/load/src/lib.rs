//! The load function: load messages → warehouse.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use mdp_core::config::LoadStrategy;
use mdp_core::messages::{LoadRequest, decode_message};
use mdp_core::{Lake, StageError};
use mdp_lambda::{BatchContext, handle_batch};
use mdp_warehouse::{WarehouseLoader, load_stage};

pub struct LoadFunction {
    pub lake: Lake,
    pub warehouse: Arc<dyn WarehouseLoader>,
    pub strategy: LoadStrategy,
    pub batch: BatchContext,
}

impl LoadFunction {
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        handle_batch(event, &self.batch, |body| self.handle_message(body)).await
    }

    async fn handle_message(&self, body: String) -> Result<(), StageError> {
        let request: LoadRequest = decode_message(&body)?;
        load_stage(&self.lake, self.warehouse.as_ref(), &request, self.strategy).await?;
        Ok(())
    }
}
