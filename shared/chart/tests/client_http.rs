//! The real chart client against a local server: recorded bodies, and the
//! faults of DESIGN.md 5a (429 + Retry-After, 5xx, timeouts, cut bodies,
//! refused connections, 404, 400 no data).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mdp_chart::{ChartClient, ChartClientSettings, fetch_stage};
use mdp_core::messages::FetchRequest;
use mdp_core::source::{ChartContent, MarketDataSource};
use mdp_core::{Lake, LocalStore, Ticker, dates::FetchMode};
use mdp_devtools::{ChartReplayServer, Reply};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/yahoo/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

const MSFT: &str = "msft_1d_range_2021-02-01_2022-01-28_dividends.json";

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn client(base_url: String, timeout_ms: u64, max_retries: u32, retry_delay_ms: u64) -> ChartClient {
    ChartClient::new(ChartClientSettings {
        timeout: Duration::from_millis(timeout_ms),
        max_retries,
        retry_delay: Duration::from_millis(retry_delay_ms),
        ..ChartClientSettings::new(base_url)
    })
    .unwrap()
}

async fn msft_server() -> ChartReplayServer {
    let server = ChartReplayServer::start().await.unwrap();
    server.add_series("MSFT", &fixture(MSFT)).unwrap();
    server
}

fn series_len(content: &ChartContent, start: &str, end: &str) -> usize {
    match content {
        ChartContent::Series(s) => s.bars_in_range(d(start), d(end)).len(),
        ChartContent::NoData(why) => panic!("no data: {why}"),
    }
}

#[tokio::test]
async fn one_request_per_range_with_a_browser_user_agent() {
    let server = msft_server().await;
    let c = client(server.base_url(), 5_000, 3, 10);
    let msft = Ticker::parse("MSFT").unwrap();
    let got = c
        .fetch_daily(&msft, d("2021-03-01"), d("2021-03-31"))
        .await
        .unwrap();
    assert_eq!(got.attempts, 1);
    // March 2021 had 23 NYSE sessions; the window's margin days are filtered out.
    assert_eq!(series_len(&got.content, "2021-03-01", "2021-03-31"), 23);
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].period1, Some(1_614_470_400)); // 2021-02-28T00:00Z
    assert_eq!(received[0].period2, Some(1_617_321_600)); // 2021-04-02T00:00Z
    assert!(
        received[0]
            .user_agent
            .as_deref()
            .unwrap_or("")
            .starts_with("Mozilla/5.0")
    );
}

#[tokio::test]
async fn retry_after_one_second_costs_one_retry_of_about_a_second() {
    let server = msft_server().await;
    server.push_reply("MSFT", Reply::too_many_requests("1"));
    // The configured backoff base is 5 s: only Retry-After can make it ~1 s.
    let c = client(server.base_url(), 5_000, 3, 5_000);
    let started = Instant::now();
    let got = c
        .fetch_daily(
            &Ticker::parse("MSFT").unwrap(),
            d("2021-03-01"),
            d("2021-03-05"),
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(got.attempts, 2);
    assert_eq!(server.request_count("MSFT"), 2);
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(2_500),
        "{elapsed:?}"
    );
    assert_eq!(series_len(&got.content, "2021-03-01", "2021-03-05"), 5);
}

#[tokio::test]
async fn server_errors_back_off_exponentially_then_give_up_as_transient() {
    let server = msft_server().await;
    for _ in 0..3 {
        server.push_reply("MSFT", Reply::status(503, "unavailable"));
    }
    let c = client(server.base_url(), 5_000, 2, 100);
    let started = Instant::now();
    let err = c
        .fetch_daily(
            &Ticker::parse("MSFT").unwrap(),
            d("2021-03-01"),
            d("2021-03-05"),
        )
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.message().contains("after 3 attempts") && err.message().contains("503"),
        "{err}"
    );
    assert_eq!(server.request_count("MSFT"), 3);
    // 100 ms then 200 ms, each with up to 25 % jitter.
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1_500),
        "{elapsed:?}"
    );

    // With retries left, the next success is returned.
    server.push_reply("MSFT", Reply::status(500, "oops"));
    let got = c
        .fetch_daily(
            &Ticker::parse("MSFT").unwrap(),
            d("2021-03-01"),
            d("2021-03-05"),
        )
        .await
        .unwrap();
    assert_eq!(got.attempts, 2);
}

#[tokio::test]
async fn timeouts_and_cut_bodies_are_retried() {
    let server = msft_server().await;
    server.push_reply("MSFT", Reply::Delayed(Duration::from_secs(3)));
    server.push_reply("MSFT", Reply::Truncated { sent: 1_000 });
    let c = client(server.base_url(), 300, 2, 10);
    let got = c
        .fetch_daily(
            &Ticker::parse("MSFT").unwrap(),
            d("2021-03-01"),
            d("2021-03-05"),
        )
        .await
        .unwrap();
    assert_eq!(got.attempts, 3);
    assert_eq!(series_len(&got.content, "2021-03-01", "2021-03-05"), 5);

    server.push_reply("MSFT", Reply::Delayed(Duration::from_secs(3)));
    let no_retry = client(server.base_url(), 300, 0, 10);
    let err = no_retry
        .fetch_daily(
            &Ticker::parse("MSFT").unwrap(),
            d("2021-03-01"),
            d("2021-03-05"),
        )
        .await
        .unwrap_err();
    assert!(
        err.is_transient() && err.message().contains("timed out"),
        "{err}"
    );
}

#[tokio::test]
async fn refused_connection_is_transient() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(
        format!("http://127.0.0.1:{port}/v8/finance/chart"),
        1_000,
        1,
        10,
    );
    let err = c
        .fetch_daily(
            &Ticker::parse("MSFT").unwrap(),
            d("2021-03-01"),
            d("2021-03-05"),
        )
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.message().contains("connection failed"), "{err}");
}

#[tokio::test]
async fn unknown_symbol_is_permanent_without_retry() {
    let server = msft_server().await;
    let c = client(server.base_url(), 1_000, 3, 10);
    let err = c
        .fetch_daily(
            &Ticker::parse("SIX").unwrap(),
            d("2020-01-01"),
            d("2020-01-03"),
        )
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(
        err.message().contains("SIX") && err.message().contains("404"),
        "{err}"
    );
    assert_eq!(server.request_count("SIX"), 1);
}

#[tokio::test]
async fn no_data_and_empty_results_are_successes_with_zero_bars() {
    let server = msft_server().await;
    let beke = String::from_utf8(fixture(
        "beke_error_400_bad_request_range_before_listing.json",
    ))
    .unwrap();
    server.push_reply("BEKE", Reply::status(400, &beke));
    server
        .add_series(
            "APS.AX",
            &fixture("aps.ax_1d_empty_result_no_timestamp.json"),
        )
        .unwrap();
    let c = client(server.base_url(), 1_000, 3, 10);
    let got = c
        .fetch_daily(
            &Ticker::parse("BEKE").unwrap(),
            d("2020-01-01"),
            d("2020-01-03"),
        )
        .await
        .unwrap();
    assert!(
        matches!(got.content, ChartContent::NoData(ref why) if why.contains("Data doesn't exist"))
    );
    assert_eq!(got.attempts, 1);
    let empty = c
        .fetch_daily(
            &Ticker::parse("APS.AX").unwrap(),
            d("2020-01-01"),
            d("2020-01-03"),
        )
        .await
        .unwrap();
    assert_eq!(series_len(&empty.content, "2020-01-01", "2020-01-03"), 0);
    // A range outside the recording is answered like the API: a result without bars.
    let before = c
        .fetch_daily(
            &Ticker::parse("MSFT").unwrap(),
            d("2019-01-01"),
            d("2019-01-31"),
        )
        .await
        .unwrap();
    assert_eq!(series_len(&before.content, "2019-01-01", "2019-01-31"), 0);
}

#[tokio::test]
async fn fetch_stage_lands_the_body_unchanged_and_hands_over_the_key() {
    let server = msft_server().await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let c = client(server.base_url(), 5_000, 0, 10);
    let request = FetchRequest {
        v: 1,
        run_id: "run-7".into(),
        ticker: Ticker::parse("msft").unwrap(),
        start: d("2021-06-01"),
        end: d("2021-06-30"),
        mode: FetchMode::Backfill,
    };
    let out = fetch_stage(&c, &lake, &request).await.unwrap();
    assert_eq!(out.bars_in_range, 22);
    let key = "raw/yahoo/chart/ticker=MSFT/2021-06-01_2021-06-30.json";
    assert_eq!(out.raw_key.as_deref(), Some(key));
    let landed = std::fs::read(dir.path().join(key)).unwrap();
    let direct = c
        .fetch_daily(&request.ticker, request.start, request.end)
        .await
        .unwrap();
    assert_eq!(landed, direct.body, "raw zone holds the body byte for byte");
    let next = out.next.unwrap();
    assert_eq!(
        (next.v, next.run_id.as_str(), next.raw_key.as_str()),
        (1, "run-7", key)
    );
    assert_eq!((next.start, next.end), (request.start, request.end));

    // A range with no bars ends the chain for that ticker.
    let weekend = FetchRequest {
        start: d("2021-06-05"),
        end: d("2021-06-06"),
        ..request.clone()
    };
    let out = fetch_stage(&c, &lake, &weekend).await.unwrap();
    assert_eq!(out.bars_in_range, 0);
    assert!(out.next.is_none());
}
