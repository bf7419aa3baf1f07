//! The four functions over moto's SQS and S3 (the stack of the end-to-end
//! tests), each invoked as its main invokes it: in its log span, its
//! metrics collected per invocation and written as EMF. Each document must
//! follow the EMF specification and our conventions, and the row counts it
//! reports must be what the lake and the warehouse hold.

// Shared with lambda_e2e, which uses the parts this test does not.
#[allow(dead_code)]
mod lambda_stack;

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use fetch::FetchFunction;
use lambda_stack::*;
use mdp_chart::{ChartClient, ChartClientSettings};
use mdp_core::metrics::{FunctionMetrics, Metric, NAMESPACE, Stage, check_emf_document};
use mdp_devtools::Reply;
use mdp_lake::read_history;
use mdp_tests::*;
use serde_json::Value;

/// The documents of one invocation, and the request id it was given.
struct Invocation {
    request_id: String,
    documents: Vec<Value>,
}

fn parse_emf(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Plays the event source mapping on `queue_url` until it is empty, each
/// batch one invocation of `handle` through `function` (as the main does).
async fn drain<F, Fut>(
    stack: &Stack,
    queue_url: &str,
    function: &FunctionMetrics,
    handle: F,
) -> Vec<Invocation>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let mut invocations = Vec::new();
    loop {
        let event = receive(&stack.sqs, queue_url).await;
        if event.records.is_empty() {
            return invocations;
        }
        let request_id = format!("req-{}-{}", function.stage(), invocations.len());
        let mut emf = Vec::new();
        let response = function
            .invocation(&request_id, handle(event.clone()), &mut emf)
            .await;
        assert!(response.batch_item_failures.is_empty(), "{request_id}");
        settle(&stack.sqs, queue_url, &event, &response).await;
        invocations.push(Invocation {
            request_id,
            documents: parse_emf(&emf),
        });
    }
}

/// The specification, then ours: namespace, the one `Stage` dimension with
/// the function's stage, no ticker dimension, known names and units, the
/// invocation's request id as a property.
fn check_documents(invocations: &[Invocation], stage: Stage) {
    assert!(!invocations.is_empty(), "{stage}: no invocation");
    for (i, invocation) in invocations.iter().enumerate() {
        assert_eq!(invocation.documents.len(), 1, "{stage}: one document each");
        for document in &invocation.documents {
            check_emf_document(document).unwrap_or_else(|e| panic!("{e}: {document}"));
            let directive = &document["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], NAMESPACE);
            assert_eq!(directive["Dimensions"], serde_json::json!([["Stage"]]));
            assert_eq!(document["Stage"], stage.as_str());
            for definition in directive["Metrics"].as_array().unwrap() {
                let metric = Metric::ALL
                    .into_iter()
                    .find(|m| definition["Name"] == m.name())
                    .unwrap_or_else(|| panic!("unknown metric {definition}"));
                assert_eq!(definition["Unit"], metric.unit().as_str());
            }
            assert_eq!(document["request_id"], invocation.request_id.as_str());
            assert_eq!(
                document["ColdStart"],
                u64::from(i == 0),
                "{stage}: a cold start in the first invocation only"
            );
        }
    }
}

/// A counter summed over every document of the invocations.
fn total(invocations: &[Invocation], metric: Metric) -> u64 {
    invocations
        .iter()
        .flat_map(|i| &i.documents)
        .filter_map(|d| d.get(metric.name()))
        .map(|v| v.as_u64().unwrap_or_else(|| panic!("{metric}: {v}")))
        .sum()
}

/// How many values a distribution has over the invocations.
fn samples(invocations: &[Invocation], metric: Metric) -> usize {
    invocations
        .iter()
        .flat_map(|i| &i.documents)
        .filter_map(|d| d.get(metric.name()))
        .map(|v| v.as_array().map_or(1, Vec::len))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_write_valid_emf_whose_row_counts_match_the_lake_and_warehouse() {
    let chart = recorded_server().await;
    // The first chart request is turned away: fetch retries it in-process.
    chart.push_reply("MSFT", Reply::too_many_requests("0"));
    let stack = stack(&chart, 3).await;
    let validate = FunctionMetrics::new(validate::STAGE);
    let fetch = FunctionMetrics::new(fetch::STAGE);
    let transform = FunctionMetrics::new(transform::STAGE);
    let load = FunctionMetrics::new(load::STAGE);
    // As the fetch main builds it: the chart client records into the
    // function's metrics.
    let fetch_function = FetchFunction {
        lake: stack.fetch.lake.clone(),
        source: Arc::new(
            ChartClient::new(ChartClientSettings::from(&stack.scratch.config()))
                .unwrap()
                .with_metrics(fetch.metrics().clone()),
        ),
        queue: stack.fetch.queue.clone(),
        transform_queue_url: stack.fetch.transform_queue_url.clone(),
        batch: stack.fetch.batch.clone(),
    };

    let event = chain_event(&["MSFT"], "2021-02-01", "2021-12-31");
    let mut emf = Vec::new();
    let planned = validate
        .invocation(
            "req-validate-0",
            stack
                .validate
                .handle_metered(event, d("2021-12-31"), validate.metrics()),
            &mut emf,
        )
        .await
        .unwrap();
    assert_eq!(planned.sent, ["MSFT"]);
    let mut validations = vec![Invocation {
        request_id: "req-validate-0".into(),
        documents: parse_emf(&emf),
    }];
    let fetches = drain(&stack, &stack.queues.fetch, &fetch, |e| {
        fetch_function.handle_metered(e, fetch.metrics())
    })
    .await;
    let transforms = drain(&stack, &stack.queues.transform, &transform, |e| {
        stack.transform.handle_metered(e, transform.metrics())
    })
    .await;
    let loads = drain(&stack, &stack.queues.load, &load, |e| {
        stack.load.handle_metered(e, load.metrics())
    })
    .await;
    // A warm validate of the day's run: the watermark is there, nothing to do.
    let daily = serde_json::json!({"tickers": ["MSFT"], "date": "2021-12-31"});
    let mut emf = Vec::new();
    let again = validate
        .invocation(
            "req-validate-1",
            stack
                .validate
                .handle_metered(daily, d("2021-12-31"), validate.metrics()),
            &mut emf,
        )
        .await
        .unwrap();
    assert!(again.sent.is_empty() && again.catching_up.is_empty());
    validations.push(Invocation {
        request_id: "req-validate-1".into(),
        documents: parse_emf(&emf),
    });

    check_documents(&validations, Stage::Validate);
    check_documents(&fetches, Stage::Fetch);
    check_documents(&transforms, Stage::Transform);
    check_documents(&loads, Stage::Load);

    // What the lake and the warehouse hold.
    let lake_rows = read_history(&stack.validate.lake, &ticker("MSFT"))
        .await
        .unwrap()
        .len() as u64;
    let warehouse_rows = stack
        .warehouse
        .read_rows(Some(&ticker("MSFT")))
        .await
        .unwrap()
        .len() as u64;
    assert!(lake_rows > 200, "{lake_rows}");
    // A first run: every bar fetched is written, every row written loaded.
    assert_eq!(total(&fetches, Metric::RowsFetched), lake_rows);
    assert_eq!(total(&transforms, Metric::RowsWritten), lake_rows);
    assert_eq!(total(&loads, Metric::RowsLoaded), warehouse_rows);
    assert_eq!(warehouse_rows, lake_rows);

    // The run's properties, for Logs Insights; never dimensions.
    for document in [&fetches, &transforms, &loads]
        .into_iter()
        .flatten()
        .flat_map(|i| &i.documents)
    {
        assert_eq!(document["run_id"], planned.run_id.as_str());
        assert_eq!(document["ticker"], "MSFT");
    }
    assert_eq!(
        validations[0].documents[0]["run_id"],
        planned.run_id.as_str()
    );

    // The SQS batch handling and the chart client.
    for (stage, invocations) in [
        (Stage::Fetch, &fetches),
        (Stage::Transform, &transforms),
        (Stage::Load, &loads),
    ] {
        assert_eq!(total(invocations, Metric::RecordsHandled), 1, "{stage}");
        assert_eq!(samples(invocations, Metric::StageDuration), 1, "{stage}");
        for failure in [
            Metric::TransientFailures,
            Metric::PermanentFailures,
            Metric::DeadLettered,
        ] {
            assert_eq!(total(invocations, failure), 0, "{stage} {failure}");
            assert!(
                invocations[0].documents[0].get(failure.name()).is_some(),
                "{stage}: {failure} written as 0"
            );
        }
    }
    assert_eq!(total(&fetches, Metric::ChartApi429), 1);
    assert_eq!(total(&fetches, Metric::ChartApiRetries), 1);
    assert_eq!(
        samples(&fetches, Metric::ChartApiLatency),
        chart.request_count("MSFT"),
        "one latency per HTTP attempt"
    );
    assert_eq!(chart.request_count("MSFT"), 2);

    // Validate: one fetch planned, then nothing.
    let plan = |i: usize, metric: Metric| total(&validations[i..=i], metric);
    assert_eq!(plan(0, Metric::TickersPlanned), 1);
    assert_eq!(plan(1, Metric::TickersPlanned), 0);
    for i in 0..2 {
        assert_eq!(plan(i, Metric::TickersCaughtUp), 0);
        assert_eq!(plan(i, Metric::TickersFailed), 0);
        assert_eq!(samples(&validations[i..=i], Metric::StageDuration), 1);
    }
    stack.close().await;
}
