//! Cold start: logging, metrics, configuration, AWS clients, the chart HTTP
//! client; then batches, each in its log span, its metrics written to stdout
//! as EMF once handled.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use fetch::{FetchFunction, RECORDS_IN_FLIGHT, STAGE};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use mdp_aws::LambdaEnv;
use mdp_chart::{ChartClient, ChartClientSettings};
use mdp_core::metrics::FunctionMetrics;

#[tokio::main]
async fn main() -> Result<(), Error> {
    mdp_core::logging::init_logging(true);
    let metrics = FunctionMetrics::new(STAGE);
    let env = LambdaEnv::load().await?;
    let function = FetchFunction {
        lake: env.lake.clone(),
        // The request budget of this process (MARKET_DATA_API_CONCURRENCY,
        // MARKET_DATA_API_RATE); with one record at a time (RECORDS_IN_FLIGHT:
        // FetchMaxConcurrency functions × 1 record ≤ MARKET_DATA_API_CONCURRENCY
        // per deployment) it holds at most one request in flight.
        source: Arc::new(
            ChartClient::new(ChartClientSettings::from(&env.config))?
                .with_metrics(metrics.metrics().clone()),
        ),
        queue: env.queue.clone(),
        transform_queue_url: env
            .required(&env.config.transform_queue_url, "TRANSFORM_QUEUE_URL")?,
        batch: env.batch_context(
            mdp_core::queue::StageName::Fetch,
            &env.config.fetch_queue_url,
            "FETCH_QUEUE_URL",
            &env.config.fetch_dlq_url,
            RECORDS_IN_FLIGHT,
        )?,
    };
    let (function, metrics) = (&function, &metrics);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let handled = function.handle_metered(event.payload, metrics.metrics());
        let response = metrics
            .invocation(&event.context.request_id, handled, &mut std::io::stdout())
            .await;
        Ok::<_, Error>(response)
    }))
    .await
}
