//! The chart client's metrics against the local replay server: one latency
//! per HTTP attempt, the retries and the 429 answers, under `Stage=fetch`.

use std::time::Duration;

use chrono::NaiveDate;
use mdp_chart::{ChartClient, ChartClientSettings};
use mdp_core::Ticker;
use mdp_core::metrics::{Metric, Metrics, Stage, check_emf_document};
use mdp_core::source::MarketDataSource;
use mdp_devtools::{ChartReplayServer, Reply};

/// 2026-01-01T00:00:00Z in milliseconds.
const NOW_MS: i64 = 1_767_225_600_000;
const MSFT: &str = "msft_1d_range_2021-02-01_2022-01-28_dividends.json";

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn msft_server() -> ChartReplayServer {
    let body = std::fs::read(format!(
        "{}/../../tests/fixtures/yahoo/{MSFT}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let server = ChartReplayServer::start().await.unwrap();
    server.add_series("MSFT", &body).unwrap();
    server
}

fn metered_client(server: &ChartReplayServer, metrics: &Metrics) -> ChartClient {
    ChartClient::new(ChartClientSettings {
        timeout: Duration::from_millis(500),
        max_retries: 3,
        retry_delay: Duration::from_millis(10),
        ..ChartClientSettings::new(server.base_url())
    })
    .unwrap()
    .with_metrics(metrics.clone())
}

#[tokio::test]
async fn every_attempt_has_a_latency_and_retries_and_429s_are_counted() {
    let server = msft_server().await;
    server.push_reply("MSFT", Reply::too_many_requests("0"));
    server.push_reply("MSFT", Reply::status(503, "unavailable"));
    server.push_reply("MSFT", Reply::Delayed(Duration::from_secs(2)));
    let metrics = Metrics::new();
    let client = metered_client(&server, &metrics);
    let msft = Ticker::parse("MSFT").unwrap();
    let got = client
        .fetch_daily(&msft, d("2021-03-01"), d("2021-03-31"))
        .await
        .unwrap();
    assert_eq!(got.attempts, 4);
    let latencies = metrics.values(Stage::Fetch, Metric::ChartApiLatency);
    assert_eq!(latencies.len(), 4, "one value per HTTP attempt");
    // The third attempt waited for the 500 ms timeout.
    assert!(latencies[2] >= 450.0, "{latencies:?}");
    assert_eq!(metrics.total(Stage::Fetch, Metric::ChartApiRetries), 3.0);
    assert_eq!(metrics.total(Stage::Fetch, Metric::ChartApi429), 1.0);

    let documents = metrics.documents(NOW_MS);
    assert_eq!(documents.len(), 1);
    let document = &documents[0];
    check_emf_document(document).unwrap();
    assert_eq!(document["Stage"], "fetch");
    assert_eq!(document["ChartApiLatency"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_first_time_success_writes_zero_retries_and_zero_429s() {
    let server = msft_server().await;
    let metrics = Metrics::new();
    let client = metered_client(&server, &metrics);
    let msft = Ticker::parse("MSFT").unwrap();
    client
        .fetch_daily(&msft, d("2021-03-01"), d("2021-03-31"))
        .await
        .unwrap();
    // Clones share the collector (and the request budget).
    client
        .clone()
        .fetch_daily(&msft, d("2021-04-01"), d("2021-04-30"))
        .await
        .unwrap();
    assert_eq!(
        metrics.values(Stage::Fetch, Metric::ChartApiLatency).len(),
        2
    );
    let document = &metrics.documents(NOW_MS)[0];
    check_emf_document(document).unwrap();
    assert_eq!(document["ChartApiRetries"], 0);
    assert_eq!(document["ChartApi429"], 0);
}
