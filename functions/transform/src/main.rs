//! Cold start: logging, metrics, configuration, AWS clients, lake; then
//! batches, each in its log span, its metrics written to stdout as EMF once
//! handled.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use mdp_aws::LambdaEnv;
use mdp_core::metrics::FunctionMetrics;
use transform::{STAGE, TransformFunction};

/// One record at a time: two messages of one ticker must not race on its history.
const RECORDS_IN_FLIGHT: usize = 1;

#[tokio::main]
async fn main() -> Result<(), Error> {
    mdp_core::logging::init_logging(true);
    let metrics = FunctionMetrics::new(STAGE);
    let env = LambdaEnv::load().await?;
    let function = TransformFunction {
        lake: env.lake.clone(),
        compression: env.config.parquet_compression,
        queue: env.queue.clone(),
        load_queue_url: env.required(&env.config.load_queue_url, "LOAD_QUEUE_URL")?,
        batch: env.batch_context(
            mdp_core::queue::StageName::Transform,
            &env.config.transform_queue_url,
            "TRANSFORM_QUEUE_URL",
            &env.config.transform_dlq_url,
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
