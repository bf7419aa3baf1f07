//! The four functions chained over real wire protocols: moto's S3, SQS and
//! Secrets Manager on a loopback port, the machine's Postgres, and the local
//! chart server. The test plays Lambda's event source mapping: it receives
//! from a queue, builds the `SqsEvent`, calls the handler, and deletes only
//! the messages the handler did not report as failed.

mod lambda_stack;

use lambda_stack::*;
use mdp_devtools::Reply;
use mdp_lake::decode_parquet;
use mdp_tests::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_functions_match_the_one_process_run() {
    let chart = recorded_server().await;
    let tickers = ["MSFT", "NVDA", "BTC-USD"];
    let (reference, ref_keys, ref_rows) =
        reference_run(&chart, &tickers, "2020-06-01", "2021-12-31").await;
    let stack = stack(&chart, 3).await;
    stack
        .run_chain(chain_event(&tickers, "2020-06-01", "2021-12-31"), 1)
        .await;

    // The same objects under the S3 prefix as in the filesystem lake.
    let keys: Vec<String> = stack
        .s3_keys()
        .await
        .iter()
        .map(|k| k.strip_prefix("lake/").unwrap().to_string())
        .collect();
    assert_eq!(keys, ref_keys);
    // Raw responses land byte for byte as the server sent them.
    let raw_key = keys
        .iter()
        .find(|k| k.starts_with("raw/yahoo/chart/ticker=MSFT/"))
        .unwrap();
    let reference_raw = std::fs::read(reference.lake_dir().join(raw_key)).unwrap();
    assert_eq!(
        stack.s3_object(&format!("lake/{raw_key}")).await,
        reference_raw
    );
    // Curated Parquet read from S3 equals the filesystem run, value for value.
    let part = "curated/market_data/ticker=NVDA/year=2021/part-0.parquet";
    let ticker = part
        .split("ticker=")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(mdp_core::encoding::percent_decode)
        .unwrap();
    let from_s3 = decode_parquet(&stack.s3_object(&format!("lake/{part}")).await, &ticker).unwrap();
    let from_fs = decode_parquet(
        &std::fs::read(reference.lake_dir().join(part)).unwrap(),
        &ticker,
    )
    .unwrap();
    assert_same_values(&from_s3, &from_fs);
    let s3_rows = lake_rows(&stack.validate.lake, &tickers).await;
    // MSFT and NVDA: 252 sessions less the 19 of January 2022; BTC-USD: the
    // 218 days 2020-06-01..2021-01-04 less 3 null bars in October.
    assert_eq!(s3_rows.len(), 233 + 233 + 215);
    // The warehouse holds the lake's rows, equal to the one-process run.
    let wh = stack.warehouse.read_rows(None).await.unwrap();
    assert_same_values(&wh, &ref_rows);
    let mut sorted_lake = s3_rows.clone();
    sorted_lake
        .sort_by(|a, b| (a.ticker.as_bytes(), a.date()).cmp(&(b.ticker.as_bytes(), b.date())));
    assert_eq!(
        wh, sorted_lake,
        "warehouse rows are the S3 lake's rows, timestamps included"
    );
    for dlq in [
        &stack.queues.fetch_dlq,
        &stack.queues.transform_dlq,
        &stack.queues.load_dlq,
    ] {
        assert_eq!(stack.queue_len(dlq).await, 0);
    }
    reference.cleanup().await;
    stack.close().await;
}

/// Issue 9 item 1 on S3: the lake the chain wrote is read by pandas, pyarrow
/// and polars with its s3:// URL alone (endpoint and credentials from the
/// standard AWS_* variables), ^GSPC decoded from `ticker=%5EGSPC`, the rows
/// those the chain loaded into the warehouse (tests/check_lake_s3.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_read_the_s3_lake_with_its_url_alone() {
    let started = Instant::now();
    let chart = recorded_server().await;
    chart
        .add_series(
            "^GSPC",
            &mdp_devtools::synthetic_daily_chart("^GSPC", d("2020-11-02"), 120, 9),
        )
        .unwrap();
    let tickers = ["^GSPC", "MSFT", "BTC-USD"];
    let stack = stack(&chart, 3).await;
    stack
        .run_chain(chain_event(&tickers, "2020-11-01", "2021-03-31"), 1)
        .await;
    let keys = stack.s3_keys().await;
    assert!(
        keys.iter()
            .any(|k| k.starts_with("lake/curated/market_data/ticker=%5EGSPC/year=2020/")),
        "{keys:?}"
    );
    let loaded = stack.warehouse.read_rows(None).await.unwrap();
    assert_eq!(
        loaded.len(),
        lake_rows(&stack.validate.lake, &tickers).await.len()
    );
    for t in tickers {
        assert!(loaded.iter().any(|r| r.ticker == t), "{t} loaded");
    }

    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("expected.json");
    std::fs::write(&expected, rows_json(&loaded).to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("check_lake_s3.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(format!("s3://{}/lake/curated/market_data", stack.bucket))
        .arg(&expected)
        .env("AWS_ENDPOINT_URL", &stack._moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", mdp_aws::LOCAL_REGION)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("python3 runs (pip install -r tests/requirements.txt)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "check_lake_s3.py: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.starts_with("ok: "), "{stdout}");
    println!("{stdout}({:.1?})", started.elapsed());
    stack.close().await;
}

/// Rows as check_lake_s3.py expects them: one object per row, every column
/// of the contract, dates as YYYY-MM-DD and instants as UTC microsecond text.
fn rows_json(rows: &[mdp_core::CuratedRow]) -> serde_json::Value {
    use mdp_core::schema::{MARKET_DATA, Value};
    use serde_json::json;
    rows.iter()
        .map(|row| {
            let object = MARKET_DATA.iter().zip(row.values()).map(|(c, v)| {
                let v = match v {
                    Value::Text(s) => json!(s),
                    Value::Date(d) => json!(d.to_string()),
                    Value::Float(f) => json!(f),
                    Value::Int(i) => json!(i),
                    Value::Timestamp(t) => json!(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
                };
                (c.name.to_string(), v)
            });
            serde_json::Value::Object(object.collect())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_leaves_the_same_lake_and_warehouse() {
    let chart = recorded_server().await;
    let tickers = ["MSFT", "NVDA"];
    let once = stack(&chart, 3).await;
    once.run_chain(chain_event(&tickers, "2021-02-01", "2021-09-30"), 1)
        .await;
    let twice = stack(&chart, 3).await;
    // Each batch is handled once, then twice more concurrently, before deletion.
    twice
        .run_chain(chain_event(&tickers, "2021-02-01", "2021-09-30"), 3)
        .await;

    let strip = |keys: Vec<String>| {
        keys.into_iter()
            .map(|k| k.strip_prefix("lake/").unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(twice.s3_keys().await), strip(once.s3_keys().await));
    let a = lake_rows(&once.validate.lake, &tickers).await;
    let b = lake_rows(&twice.validate.lake, &tickers).await;
    assert_same_values(&a, &b);
    let wa = once.warehouse.read_rows(None).await.unwrap();
    let wb = twice.warehouse.read_rows(None).await.unwrap();
    assert_eq!(wb.len(), a.len(), "no duplicate rows");
    assert_same_values(&wa, &wb);
    // Duplicates write the same rows, timestamps included: the lake equals its warehouse.
    let mut sorted = b.clone();
    sorted.sort_by(|x, y| (x.ticker.as_bytes(), x.date()).cmp(&(y.ticker.as_bytes(), y.date())));
    assert_eq!(wb, sorted);
    once.close().await;
    twice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_reach_the_dead_letter_queue_and_neighbours_succeed() {
    let chart = recorded_server().await;
    // AAPL's server always fails: a message that can never succeed.
    for _ in 0..(MAX_RECEIVE_COUNT as usize + 2) {
        chart.push_reply("AAPL", Reply::status(503, "down"));
    }
    let stack = stack(&chart, 0).await;
    let planned = stack
        .validate
        .handle(
            chain_event(&["MSFT", "AAPL"], "2021-03-01", "2021-03-31"),
            d("2021-03-31"),
        )
        .await
        .unwrap();
    assert_eq!(planned.sent, ["MSFT", "AAPL"]);
    // A malformed message and one of an unknown version, in the same queue.
    let bodies = vec![
        "{not json".to_string(),
        r#"{"v":2,"run_id":"r","ticker":"MSFT"}"#.to_string(),
    ];
    mdp_core::queue::Queue::send(stack.fetch.queue.as_ref(), &stack.queues.fetch, &bodies)
        .await
        .unwrap();

    // First delivery: MSFT succeeds, the two bad bodies are dead-lettered at
    // once (permanent), AAPL is reported failed (transient) and hidden.
    let (handled, mut failed) = stack.pump(Stage::Fetch, 1).await;
    assert_eq!((handled, failed.len()), (4, 1));
    assert_eq!(stack.queue_len(&stack.queues.fetch_dlq).await, 2);

    // Each time its delay passes it fails again, until the redrive policy
    // moves it to the dead-letter queue after maxReceiveCount receives.
    wait_out_retry_delay(&stack, &stack.queues.fetch, &failed).await;
    for receive_no in 2..=MAX_RECEIVE_COUNT {
        failed = stack.pump(Stage::Fetch, 1).await.1;
        assert_eq!(failed.len(), 1, "receive {receive_no}");
        make_visible(&stack, &stack.queues.fetch, &failed).await;
    }
    assert!(
        receive(&stack.sqs, &stack.queues.fetch)
            .await
            .records
            .is_empty(),
        "redriven, not delivered a sixth time"
    );
    assert_eq!(
        stack.queue_len(&stack.queues.fetch_dlq).await,
        3,
        "AAPL joined the two bad bodies"
    );
    assert_eq!(
        chart.request_count("AAPL"),
        MAX_RECEIVE_COUNT as usize,
        "one request per delivery"
    );

    // The neighbour went all the way through.
    stack.pump(Stage::Transform, 1).await;
    stack.pump(Stage::Load, 1).await;
    assert_eq!(
        stack
            .warehouse
            .read_rows(Some(&ticker("MSFT")))
            .await
            .unwrap()
            .len(),
        23
    );
    assert!(
        stack
            .warehouse
            .read_rows(Some(&ticker("AAPL")))
            .await
            .unwrap()
            .is_empty()
    );
    stack.close().await;
}

/// Checks a failed message stays hidden past the queue's own visibility
/// timeout (the function delayed its redelivery), then lets that delay pass
/// by making it visible again.
async fn wait_out_retry_delay(stack: &Stack, queue_url: &str, failed: &[String]) {
    tokio::time::sleep(Duration::from_millis(QUEUE_VISIBILITY_SECS * 1000 + 500)).await;
    assert!(
        receive(&stack.sqs, queue_url).await.records.is_empty(),
        "the retry is delayed, not immediate"
    );
    make_visible(stack, queue_url, failed).await;
}

async fn make_visible(stack: &Stack, queue_url: &str, receipt_handles: &[String]) {
    for handle in receipt_handles {
        stack
            .sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_fetch_is_retried_by_redelivery() {
    let chart = recorded_server().await;
    chart.push_reply("NVDA", Reply::too_many_requests("1"));
    // No in-process retries: the 429 must come back through the queue.
    let stack = stack(&chart, 0).await;
    stack
        .validate
        .handle(
            chain_event(&["NVDA"], "2021-03-01", "2021-03-31"),
            d("2021-03-31"),
        )
        .await
        .unwrap();
    let (handled, failed) = stack.pump(Stage::Fetch, 1).await;
    assert_eq!((handled, failed.len()), (1, 1));
    wait_out_retry_delay(&stack, &stack.queues.fetch, &failed).await;
    let (handled, failed) = stack.pump(Stage::Fetch, 1).await;
    assert_eq!((handled, failed.len()), (1, 0));
    assert_eq!(chart.request_count("NVDA"), 2);
    stack.pump(Stage::Transform, 1).await;
    stack.pump(Stage::Load, 1).await;
    assert_eq!(stack.warehouse.read_rows(None).await.unwrap().len(), 23);
    assert_eq!(stack.queue_len(&stack.queues.fetch_dlq).await, 0);
    stack.close().await;
}
