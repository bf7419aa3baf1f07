//! Cold start: logging, metrics, configuration, AWS clients, the warehouse
//! pool (migrated once); then batches, each in its log span, its metrics
//! written to stdout as EMF once handled. The pool stays open across warm
//! invocations.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use load::{LoadFunction, STAGE};
use mdp_aws::LambdaEnv;
use mdp_core::metrics::FunctionMetrics;

/// One record at a time: loads of one ticker stay in order.
const RECORDS_IN_FLIGHT: usize = 1;

#[tokio::main]
async fn main() -> Result<(), Error> {
    mdp_core::logging::init_logging(true);
    let metrics = FunctionMetrics::new(STAGE);
    let env = LambdaEnv::load().await?;
    let config = env.warehouse_config().await?;
    let warehouse = mdp_warehouse::connect(&config).await?;
    warehouse.migrate().await?;
    let function = LoadFunction {
        lake: env.lake.clone(),
        warehouse,
        strategy: env.config.load_strategy,
        batch: env.batch_context(
            mdp_core::queue::StageName::Load,
            &env.config.load_queue_url,
            "LOAD_QUEUE_URL",
            &env.config.load_dlq_url,
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
