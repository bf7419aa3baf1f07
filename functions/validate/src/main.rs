//! Cold start: logging, metrics, configuration, AWS clients, lake; then one
//! plan per invocation, in its log span, its metrics written to stdout as EMF.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use mdp_aws::LambdaEnv;
use mdp_core::dates::today_in_new_york;
use mdp_core::metrics::FunctionMetrics;
use validate::{STAGE, ValidateFunction};

#[tokio::main]
async fn main() -> Result<(), Error> {
    mdp_core::logging::init_logging(true);
    let metrics = FunctionMetrics::new(STAGE);
    let env = LambdaEnv::load().await?;
    let function = ValidateFunction {
        fetch_queue_url: env.required(&env.config.fetch_queue_url, "FETCH_QUEUE_URL")?,
        load_queue_url: env.required(&env.config.load_queue_url, "LOAD_QUEUE_URL")?,
        lake: env.lake.clone(),
        queue: env.queue.clone(),
        config: env.config.clone(),
    };
    let (function, metrics) = (&function, &metrics);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let planned =
                function.handle_metered(event.payload, today_in_new_york(), metrics.metrics());
            metrics
                .invocation(&event.context.request_id, planned, &mut std::io::stdout())
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
