//! Cold start: logging, configuration, the lake; then one report per
//! invocation (the schedule's, after the daily run, or a hand-made
//! `{"tickers": [...]}`).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use mdp_aws::LambdaEnv;
use report::ReportFunction;

#[tokio::main]
async fn main() -> Result<(), Error> {
    mdp_core::logging::init_logging(true);
    let env = LambdaEnv::load().await?;
    let function = ReportFunction {
        lake: env.lake.clone(),
    };
    let function = &function;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            function
                .handle(event.payload, chrono::Utc::now())
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
