//! The batch handling of `mdp-lambda` through its public API: retry delays,
//! partial batch responses (transient failures redelivered, permanent ones
//! and panics dead-lettered), FIFO groups held back behind a failure, the
//! metered counters and the failure records of the lake. Moved out of
//! src/lib.rs, whose unit tests they were, to keep that file short.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use mdp_core::metrics::{Metric, Metrics, Stage};
use mdp_core::queue::{InMemoryQueue, StageName};
use mdp_core::{ErrorClass, Lake, StageError};
use mdp_lambda::{BatchContext, MAX_RETRY_DELAY, handle_batch, handle_batch_metered, retry_delay};

fn record(id: &str, body: &str, receive_count: u32) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.receipt_handle = Some(format!("rh-{id}"));
    m.body = Some(body.into());
    m.attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    m
}

#[test]
fn retry_delay_grows_with_receive_count_and_is_capped() {
    assert_eq!(retry_delay(1), Duration::from_secs(30));
    assert_eq!(retry_delay(2), Duration::from_secs(60));
    assert_eq!(retry_delay(4), Duration::from_secs(240));
    assert_eq!(retry_delay(6), MAX_RETRY_DELAY);
    assert_eq!(retry_delay(1000), MAX_RETRY_DELAY);
}

#[tokio::test]
async fn only_transient_failures_are_reported_and_permanent_ones_are_dead_lettered() {
    let queue = Arc::new(InMemoryQueue::new());
    let ctx = BatchContext {
        queue: queue.clone(),
        source_queue_url: "q-src".into(),
        dead_letter_queue_url: Some("q-dlq".into()),
        records_in_flight: 3,
        stage: StageName::Fetch,
        lake: None,
    };
    let mut event = SqsEvent::default();
    event.records = vec![
        record("ok", "fine", 1),
        record("busy", "retry", 3),
        record("bad", "poison", 1),
        record("ok2", "fine", 2),
    ];
    let response = handle_batch(event, &ctx, |body| async move {
        match body.as_str() {
            "retry" => Err(StageError::transient("HTTP 503")),
            "poison" => Err(StageError::permanent("malformed")),
            _ => Ok(()),
        }
    })
    .await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["busy"]);
    assert_eq!(queue.drain("q-dlq"), ["poison"]);
    assert_eq!(
        queue.visibility_changes(),
        [(
            "q-src".to_string(),
            "rh-busy".to_string(),
            Duration::from_secs(120)
        )]
    );
}

#[tokio::test]
async fn a_panicking_record_is_dead_lettered_and_its_neighbours_complete() {
    let queue = Arc::new(InMemoryQueue::new());
    let ctx = BatchContext {
        queue: queue.clone(),
        source_queue_url: "q-src".into(),
        dead_letter_queue_url: Some("q-dlq".into()),
        records_in_flight: 1,
        stage: StageName::Transform,
        lake: None,
    };
    let mut event = SqsEvent::default();
    event.records = vec![
        record("a", "fine", 1),
        record("b", "boom", 1),
        record("c", "fine", 1),
    ];
    let done = std::sync::Mutex::new(Vec::new());
    let response = handle_batch(event, &ctx, |body| {
        let done = &done;
        async move {
            if body == "boom" {
                panic!("bad data");
            }
            done.lock().unwrap().push(body);
            Ok(())
        }
    })
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(done.lock().unwrap().len(), 2);
    assert_eq!(queue.drain("q-dlq"), ["boom"]);
}

#[tokio::test]
async fn after_a_failure_a_fifo_group_waits_and_other_groups_go_on() {
    let queue = Arc::new(InMemoryQueue::new());
    let ctx = BatchContext {
        queue: queue.clone(),
        source_queue_url: "q.fifo".into(),
        dead_letter_queue_url: Some("dlq.fifo".into()),
        records_in_flight: 1,
        stage: StageName::Transform,
        lake: None,
    };
    let grouped = |id: &str, body: &str, group: &str| {
        let mut r = record(id, body, 1);
        r.attributes.insert("MessageGroupId".into(), group.into());
        r
    };
    let mut event = SqsEvent::default();
    event.records = vec![
        grouped("1", "retry", "MSFT"),
        grouped("2", "fine", "AAPL"),
        grouped("3", "fine", "MSFT"),
        grouped("4", "fine", "AAPL"),
    ];
    let handled = std::sync::Mutex::new(Vec::new());
    let response = handle_batch(event, &ctx, |body| {
        let handled = &handled;
        async move {
            handled.lock().unwrap().push(body.clone());
            match body.as_str() {
                "retry" => Err(StageError::transient("HTTP 503")),
                _ => Ok(()),
            }
        }
    })
    .await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    // MSFT's second message is not handled before its first: both return.
    assert_eq!(failed, ["1", "3"]);
    assert_eq!(*handled.lock().unwrap(), ["retry", "fine", "fine"]);
}

#[tokio::test]
async fn a_metered_batch_counts_records_and_outcomes_under_its_stage() {
    let queue = Arc::new(InMemoryQueue::new());
    let ctx = BatchContext {
        queue: queue.clone(),
        source_queue_url: "q.fifo".into(),
        dead_letter_queue_url: Some("dlq.fifo".into()),
        records_in_flight: 1,
        stage: StageName::Transform,
        lake: None,
    };
    let grouped = |id: &str, body: &str, group: &str| {
        let mut r = record(id, body, 1);
        r.attributes.insert("MessageGroupId".into(), group.into());
        r
    };
    let mut no_body = grouped("5", "", "BTC-USD");
    no_body.body = None;
    let mut event = SqsEvent::default();
    event.records = vec![
        grouped("1", "fine", "AAPL"),
        grouped("2", "retry", "MSFT"),
        // Held back behind its group's failure: not handled, not counted.
        grouped("3", "fine", "MSFT"),
        grouped("4", "poison", "NVDA"),
        no_body,
        grouped("6", "boom", "AMZN"),
    ];
    let metrics = Metrics::new();
    let response =
        handle_batch_metered(event, &ctx, Stage::Transform, &metrics, |body| async move {
            match body.as_str() {
                "retry" => Err(StageError::transient("HTTP 503")),
                "poison" => Err(StageError::permanent("malformed")),
                "boom" => panic!("bad data"),
                _ => Ok(()),
            }
        })
        .await;
    assert_eq!(response.batch_item_failures.len(), 2);
    let total = |m| metrics.total(Stage::Transform, m);
    assert_eq!(total(Metric::RecordsHandled), 5.0);
    assert_eq!(total(Metric::TransientFailures), 1.0);
    assert_eq!(total(Metric::PermanentFailures), 3.0);
    assert_eq!(total(Metric::DeadLettered), 3.0);
    assert_eq!(
        metrics
            .values(Stage::Transform, Metric::StageDuration)
            .len(),
        5
    );
    assert_eq!(queue.drain("dlq.fifo").len(), 3);

    // A clean batch still writes its counters, as zeros.
    let metrics = Metrics::new();
    let mut event = SqsEvent::default();
    event.records = vec![record("a", "fine", 1)];
    handle_batch_metered(event, &ctx, Stage::Load, &metrics, |_| async { Ok(()) }).await;
    let mut out = Vec::new();
    metrics.flush(&mut out).unwrap();
    let document: serde_json::Value = serde_json::from_slice(&out).unwrap();
    mdp_core::metrics::check_emf_document(&document).unwrap();
    assert_eq!(document["Stage"], "load");
    assert_eq!(document["RecordsHandled"], 1);
    for zero in ["TransientFailures", "PermanentFailures", "DeadLettered"] {
        assert_eq!(document[zero], 0, "{zero}");
    }
}

#[tokio::test]
async fn without_a_dead_letter_queue_permanent_failures_go_back_to_the_redrive_policy() {
    let queue = Arc::new(InMemoryQueue::new());
    let ctx = BatchContext {
        queue,
        source_queue_url: "q".into(),
        dead_letter_queue_url: None,
        records_in_flight: 1,
        stage: StageName::Transform,
        lake: None,
    };
    let mut event = SqsEvent::default();
    event.records = vec![record("bad", "poison", 1)];
    let metrics = Metrics::new();
    let response = handle_batch_metered(event, &ctx, Stage::Fetch, &metrics, |_| async {
        Err(StageError::permanent("no"))
    })
    .await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(metrics.total(Stage::Fetch, Metric::PermanentFailures), 1.0);
    assert_eq!(metrics.total(Stage::Fetch, Metric::DeadLettered), 0.0);
}

#[tokio::test]
async fn dead_letters_say_why_and_transient_failures_are_recorded() {
    let dir = std::env::temp_dir().join(format!(
        "mdp-lambda-failures-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let lake = Lake::new(Arc::new(mdp_core::LocalStore::new(&dir)));
    let queue = Arc::new(InMemoryQueue::new());
    let ctx = BatchContext {
        queue: queue.clone(),
        source_queue_url: "q.fifo".into(),
        dead_letter_queue_url: Some("dlq.fifo".into()),
        records_in_flight: 1,
        stage: StageName::Transform,
        lake: Some(lake.clone()),
    };
    let grouped = |id: &str, body: &str, count: u32| {
        let mut r = record(id, body, count);
        r.attributes.insert("MessageGroupId".into(), "MSFT".into());
        r
    };
    let mut event = SqsEvent::default();
    event.records = vec![grouped("bad", r#"{"v":1,"ticker":"MSFT"}"#, 1)];
    handle_batch(event, &ctx, |_| async {
        Err(StageError::permanent("malformed message").context("decoding"))
    })
    .await;
    let letters = queue.dead_letters("dlq.fifo");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].stage, StageName::Transform);
    assert_eq!(letters[0].error_class, ErrorClass::Permanent);
    assert_eq!(letters[0].group_id.as_deref(), Some("MSFT"));
    assert_eq!(letters[0].reason, "decoding: malformed message");
    // A permanent failure has no failure record: its letter says it all.
    assert_eq!(
        lake.read_failure(StageName::Transform, "bad")
            .await
            .unwrap(),
        None
    );

    for count in [1, 2] {
        let mut event = SqsEvent::default();
        event.records = vec![grouped("busy", r#"{"v":1,"ticker":"MSFT"}"#, count)];
        handle_batch(event, &ctx, |_| async {
            Err(StageError::transient("HTTP 503"))
        })
        .await;
    }
    let record = lake
        .read_failure(StageName::Transform, "busy")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.receive_count, 2);
    assert_eq!(record.ticker.as_deref(), Some("MSFT"));
    assert_eq!(record.error_class, ErrorClass::Transient);
    assert_eq!(record.reason, "HTTP 503");
    assert!(record.first_failure <= record.last_failure);
    let _ = std::fs::remove_dir_all(&dir);
}
