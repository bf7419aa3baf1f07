//! Cold start: configuration, AWS clients, the chart HTTP client; then batches.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use fetch::{FetchFunction, RECORDS_IN_FLIGHT};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use mdp_aws::LambdaEnv;
use mdp_chart::{ChartClient, ChartClientSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    mdp_core::logging::init_logging(true);
    let env = LambdaEnv::load().await?;
    let function = FetchFunction {
        lake: env.lake.clone(),
        // The request budget of this process (MARKET_DATA_API_CONCURRENCY,
        // MARKET_DATA_API_RATE); with one record at a time (RECORDS_IN_FLIGHT:
        // FetchMaxConcurrency functions × 1 record ≤ MARKET_DATA_API_CONCURRENCY
        // per deployment) it holds at most one request in flight.
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
