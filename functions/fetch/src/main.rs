//! Cold start: configuration, AWS clients, the chart HTTP client; then batches.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use fetch::FetchFunction;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use mdp_aws::LambdaEnv;
use mdp_chart::{ChartClient, ChartClientSettings};

/// Records of a batch fetched at once: each may wait on retries.
const RECORDS_IN_FLIGHT: usize = 10;

#[tokio::main]
async fn main() -> Result<(), Error> {
    mdp_core::logging::init_logging(true);
    let env = LambdaEnv::load().await?;
    let function = FetchFunction {
        lake: env.lake.clone(),
        source: Arc::new(ChartClient::new(ChartClientSettings::from(&env.config))?),
        queue: env.queue.clone(),
        transform_queue_url: env
            .required(&env.config.transform_queue_url, "TRANSFORM_QUEUE_URL")?,
        batch: env.batch_context(
            &env.config.fetch_queue_url,
            "FETCH_QUEUE_URL",
            &env.config.fetch_dlq_url,
            RECORDS_IN_FLIGHT,
        )?,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(function.handle(event.payload).await)
    }))
    .await
}
