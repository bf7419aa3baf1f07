//! Cold start: configuration, AWS clients, lake; then one plan per invocation.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use mdp_aws::LambdaEnv;
use mdp_core::dates::today_in_new_york;
use validate::ValidateFunction;

#[tokio::main]
async fn main() -> Result<(), Error> {
    mdp_core::logging::init_logging(true);
    let env = LambdaEnv::load().await?;
    let function = ValidateFunction {
        fetch_queue_url: env.required(&env.config.fetch_queue_url, "FETCH_QUEUE_URL")?,
        load_queue_url: env.required(&env.config.load_queue_url, "LOAD_QUEUE_URL")?,
        lake: env.lake.clone(),
        queue: env.queue.clone(),
        config: env.config.clone(),
    };
    let function = &function;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            function
                .handle(event.payload, today_in_new_york())
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
