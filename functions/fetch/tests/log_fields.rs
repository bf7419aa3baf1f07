//! A fetch invocation as the main runs it, its JSON log lines and its EMF
//! metrics captured: every line of a record carries the stage, Lambda's
//! request id, the message id and, once decoded, the run id and ticker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use fetch::{FetchFunction, STAGE};
use mdp_chart::{ChartClient, ChartClientSettings};
use mdp_core::logging::{LogFormat, LogSettings, subscriber};
use mdp_core::metrics::{FunctionMetrics, check_emf_document};
use mdp_core::queue::InMemoryQueue;
use mdp_core::{Lake, LocalStore};
use mdp_lambda::BatchContext;
use serde_json::Value;

/// Lines written through the subscriber, read back by the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn record(id: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.receipt_handle = Some(format!("rh-{id}"));
    m.body = Some(body.into());
    m.attributes
        .insert("ApproximateReceiveCount".into(), "1".into());
    m
}

#[tokio::test]
async fn every_log_line_of_a_record_carries_stage_request_run_and_ticker() {
    // A chart API that refuses connections: a transient failure, logged.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let lake_dir = std::env::temp_dir().join(format!("mdp-fetch-logs-{}", std::process::id()));
    let metrics = FunctionMetrics::new(STAGE);
    let queue = Arc::new(InMemoryQueue::new());
    let function = FetchFunction {
        lake: Lake::new(Arc::new(LocalStore::new(&lake_dir))),
        source: Arc::new(
            ChartClient::new(ChartClientSettings {
                timeout: Duration::from_secs(2),
                max_retries: 1,
                retry_delay: Duration::from_millis(1),
                ..ChartClientSettings::new(format!("http://127.0.0.1:{port}/v8/finance/chart"))
            })
            .unwrap()
            .with_metrics(metrics.metrics().clone()),
        ),
        queue: queue.clone(),
        transform_queue_url: "transform".into(),
        batch: BatchContext {
            queue: queue.clone(),
            source_queue_url: "fetch".into(),
            dead_letter_queue_url: Some("fetch-dlq".into()),
            records_in_flight: 1,
            stage: mdp_core::queue::StageName::Fetch,
            lake: None,
        },
    };
    let mut event = SqsEvent::default();
    event.records = vec![
        record(
            "m-msft",
            r#"{"v":1,"run_id":"20260105T220000Z-0a1b","ticker":"MSFT","start":"2021-03-01","end":"2021-03-31","mode":"backfill"}"#,
        ),
        record("m-bad", "{not json"),
    ];

    let logs = Captured::default();
    let writer = logs.clone();
    let settings = LogSettings {
        format: LogFormat::Json,
        filter: "info".into(),
    };
    let _default =
        tracing::subscriber::set_default(subscriber(&settings, move || writer.clone(), false));
    let mut emf = Vec::new();
    let response = metrics
        .invocation(
            "req-0001",
            function.handle_metered(event, metrics.metrics()),
            &mut emf,
        )
        .await;
    assert_eq!(response.batch_item_failures.len(), 1);

    let lines = json_lines(&logs.0.lock().unwrap());
    let msft: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message_id"] == "m-msft")
        .collect();
    // The client's retry warning and the batch handler's transient failure.
    assert!(msft.len() >= 2, "{lines:#?}");
    assert!(
        msft.iter()
            .any(|l| l["message"] == "transient failure: redelivering later")
    );
    for line in &msft {
        assert_eq!(line["stage"], "fetch", "{line}");
        assert_eq!(line["request_id"], "req-0001", "{line}");
        assert_eq!(line["run_id"], "20260105T220000Z-0a1b", "{line}");
        assert_eq!(line["ticker"], "MSFT", "{line}");
        assert!(
            line["level"] == "WARN" || line["level"] == "ERROR",
            "{line}"
        );
        assert!(line["timestamp"].is_string());
    }
    // A message that cannot be decoded has no run id or ticker to give,
    // but its line still says where it comes from.
    let bad = lines
        .iter()
        .find(|l| l["message_id"] == "m-bad")
        .expect("the malformed message is logged");
    assert_eq!(bad["stage"], "fetch");
    assert_eq!(bad["request_id"], "req-0001");
    assert_eq!(bad["level"], "ERROR");
    assert!(bad.get("ticker").is_none() && bad.get("run_id").is_none());

    // The invocation's metrics, as the main writes them to stdout.
    let documents = json_lines(&emf);
    assert_eq!(documents.len(), 1);
    let document = &documents[0];
    check_emf_document(document).unwrap();
    assert_eq!(document["Stage"], "fetch");
    assert_eq!(document["request_id"], "req-0001");
    assert_eq!(document["run_id"], "20260105T220000Z-0a1b");
    assert_eq!(document["ticker"], "MSFT");
    assert_eq!(document["ColdStart"], 1);
    assert_eq!(document["RecordsHandled"], 2);
    assert_eq!(document["TransientFailures"], 1);
    assert_eq!(document["PermanentFailures"], 1);
    assert_eq!(document["DeadLettered"], 1);
    assert_eq!(document["ChartApiRetries"], 1);
    assert_eq!(document["ChartApi429"], 0);
    assert_eq!(document["ChartApiLatency"].as_array().unwrap().len(), 2);
    assert_eq!(document["StageDuration"].as_array().unwrap().len(), 2);
    assert!(document.get("RowsFetched").is_none(), "nothing was fetched");
    let _ = std::fs::remove_dir_all(&lake_dir);
}
