//! Hostile responses are contained, with the real client against local
//! servers: any `Retry-After`, bodies over `MARKET_DATA_MAX_RESPONSE_BYTES`
//! (declared or streamed) and a chart of another symbol. The request budget
//! (`MARKET_DATA_API_CONCURRENCY` / `MARKET_DATA_API_RATE`) is tested in
//! limits_budget.rs.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use mdp_chart::stage::FetchError;
use mdp_chart::{ChartClient, ChartClientSettings, ChartError, OversizedBody, fetch_stage};
use mdp_core::chart::parse_chart;
use mdp_core::messages::FetchRequest;
use mdp_core::source::{ChartContent, ChartFetch, MarketDataSource};
use mdp_core::{Lake, LocalStore, StageError, Ticker, dates::FetchMode};
use mdp_devtools::{ChartReplayServer, Reply};

use common::{MSFT, d, fixture, settings, ticker};

fn request(symbol: &str) -> FetchRequest {
    FetchRequest {
        v: 1,
        run_id: "run-limits".into(),
        ticker: ticker(symbol),
        start: d("2021-03-01"),
        end: d("2021-03-31"),
        mode: FetchMode::Backfill,
    }
}

/// Every file under `dir` (the lake root), relative.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for entry in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

/// The chart error inside a stage error.
fn chart_error(err: &StageError) -> &ChartError {
    err.find::<ChartError>()
        .unwrap_or_else(|| panic!("not a chart error: {}", err.message()))
}

/// A 200 response with `body` sent in chunks of `chunk` bytes, without a
/// `Content-Length` (`Transfer-Encoding: chunked`).
fn chunked_200(body: &[u8], chunk: usize) -> Reply {
    let mut raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for part in body.chunks(chunk) {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    Reply::Raw(raw)
}

/// A 200 response whose body ends when the connection closes (no length,
/// not chunked): the length cannot be known before reading.
fn close_delimited_200(body: &[u8]) -> Reply {
    let mut raw =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n".to_vec();
    raw.extend_from_slice(body);
    Reply::Raw(raw)
}

fn full_200(body: &[u8]) -> Reply {
    Reply::Fixed {
        status: 200,
        headers: Vec::new(),
        body: body.to_vec(),
    }
}

// ---------------------------------------------------------------- Retry-After

#[tokio::test]
async fn any_retry_after_value_is_survived_through_the_real_client() {
    let server = ChartReplayServer::start().await.unwrap();
    server.add_series("MSFT", &fixture(MSFT)).unwrap();
    let client = ChartClient::new(ChartClientSettings {
        max_retries: 1,
        ..settings(server.base_url())
    })
    .unwrap();
    let msft = ticker("MSFT");
    let far_future = (chrono::Utc::now() + chrono::Days::new(3))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    // Longer than MAX_RETRY_AFTER: one request, then a transient failure
    // (SQS redelivers), never a panic nor a wait.
    let too_long = [
        "1e20",
        "99999999999999999999",
        "18446744073709551616",
        "1e308",
        "inf",
        "3600",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        far_future.as_str(),
    ];
    // Meaningless: ignored, the ordinary backoff applies, the retry succeeds.
    let ignored = ["-1", "-1e20", "NaN", "-inf", "", "soon", "12 seconds"];
    // In the past: retry now.
    let past = [
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Thu, 01 Jan 1970 00:00:00 GMT",
    ];
    let guard = Duration::from_secs(30); // a hang guard, not a timing assertion
    for value in too_long {
        server.push_reply("MSFT", Reply::too_many_requests(value));
        let before = server.request_count("MSFT");
        let err = tokio::time::timeout(
            guard,
            client.fetch_daily(&msft, d("2021-03-01"), d("2021-03-05")),
        )
        .await
        .unwrap_or_else(|_| panic!("{value:?}: waited"))
        .unwrap_err();
        assert!(err.is_transient(), "{value:?}: {err}");
        assert!(
            matches!(chart_error(&err), ChartError::RetryAfterTooLong { .. }),
            "{value:?}: {}",
            err.message()
        );
        assert!(
            err.message().contains("retry after") && err.message().contains("429"),
            "{}",
            err.message()
        );
        assert_eq!(server.request_count("MSFT") - before, 1, "{value:?}");
    }
    for value in ignored.into_iter().chain(past) {
        server.push_reply("MSFT", Reply::too_many_requests(value));
        let got = tokio::time::timeout(
            guard,
            client.fetch_daily(&msft, d("2021-03-01"), d("2021-03-05")),
        )
        .await
        .unwrap_or_else(|_| panic!("{value:?}: waited"))
        .unwrap_or_else(|e| panic!("{value:?}: {}", e.message()));
        assert_eq!(got.attempts, 2, "{value:?}");
    }
}

// ---------------------------------------------------------------- body cap

#[tokio::test]
async fn a_declared_length_over_the_cap_fails_permanently_and_lands_nothing() {
    let body = fixture(MSFT);
    let server = ChartReplayServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));

    // One byte over: refused on Content-Length, not retried, nothing landed.
    server.push_reply("MSFT", full_200(&body));
    let limit = body.len() as u64 - 1;
    let client = ChartClient::new(ChartClientSettings {
        max_response_bytes: limit,
        ..settings(server.base_url())
    })
    .unwrap();
    let err = fetch_stage(&client, &lake, &request("MSFT"))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{}", err.message());
    match chart_error(&err) {
        ChartError::ResponseTooLarge {
            ticker,
            limit: l,
            size,
        } => {
            assert_eq!((ticker.as_str(), *l), ("MSFT", limit));
            assert_eq!(*size, OversizedBody::Declared(body.len() as u64));
        }
        other => panic!("{other}"),
    }
    let line = err.message();
    assert!(
        line.contains("MSFT")
            && line.contains("MARKET_DATA_MAX_RESPONSE_BYTES")
            && line.contains(&limit.to_string()),
        "{line}"
    );
    assert_eq!(server.request_count("MSFT"), 1);
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );

    // Exactly at the cap: read and landed byte for byte.
    server.push_reply("MSFT", full_200(&body));
    let at_cap = ChartClient::new(ChartClientSettings {
        max_response_bytes: body.len() as u64,
        ..settings(server.base_url())
    })
    .unwrap();
    let out = fetch_stage(&at_cap, &lake, &request("MSFT")).await.unwrap();
    assert_eq!(out.bars_in_range, 23);
    let landed = std::fs::read(dir.path().join(out.raw_key.unwrap())).unwrap();
    assert_eq!(landed, body);
}

#[tokio::test]
async fn a_streamed_body_over_the_cap_fails_permanently_and_lands_nothing() {
    let body = fixture(MSFT);
    let server = ChartReplayServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let limit = body.len() as u64 - 1;
    let client = ChartClient::new(ChartClientSettings {
        max_response_bytes: limit,
        ..settings(server.base_url())
    })
    .unwrap();
    let at_cap = ChartClient::new(ChartClientSettings {
        max_response_bytes: body.len() as u64,
        ..settings(server.base_url())
    })
    .unwrap();

    for (how, reply) in [
        ("chunked", chunked_200(&body, 4_096)),
        ("close-delimited", close_delimited_200(&body)),
    ] {
        // One byte over, with no length to check first: stopped while streaming.
        server.push_reply("MSFT", reply.clone());
        let before = server.request_count("MSFT");
        let err = fetch_stage(&client, &lake, &request("MSFT"))
            .await
            .unwrap_err();
        assert!(!err.is_transient(), "{how}: {}", err.message());
        match chart_error(&err) {
            ChartError::ResponseTooLarge { limit: l, size, .. } => {
                assert_eq!(*l, limit, "{how}");
                assert!(
                    matches!(size, OversizedBody::Streamed(n) if *n > limit),
                    "{how}: {size:?}"
                );
            }
            other => panic!("{how}: {other}"),
        }
        let line = err.message();
        assert!(
            line.contains("MSFT")
                && line.contains("MARKET_DATA_MAX_RESPONSE_BYTES")
                && line.contains("without a declared length"),
            "{line}"
        );
        assert_eq!(server.request_count("MSFT") - before, 1, "{how}: no retry");
        assert!(files_under(dir.path()).is_empty(), "{how}");

        // The same body exactly at the cap passes.
        server.push_reply("MSFT", reply);
        let got = at_cap
            .fetch_daily(&ticker("MSFT"), d("2021-03-01"), d("2021-03-31"))
            .await
            .unwrap_or_else(|e| panic!("{how}: {}", e.message()));
        assert_eq!(got.body, body, "{how}");
    }
}

#[tokio::test]
async fn ten_oversized_responses_at_once_all_fail_permanently() {
    // 4 MiB bodies against a 64 KiB cap, half declared, half streamed, all
    // at once through one client: each fails on its own, none is retried.
    let cap = 64 * 1024;
    let huge = vec![b' '; 4 * 1024 * 1024];
    let server = ChartReplayServer::start().await.unwrap();
    let symbols: Vec<String> = (0..10).map(|i| format!("BIG{i}")).collect();
    for (i, symbol) in symbols.iter().enumerate() {
        let reply = if i % 2 == 0 {
            full_200(&huge)
        } else {
            chunked_200(&huge, 16 * 1024)
        };
        server.push_reply(symbol, reply);
    }
    let client = ChartClient::new(ChartClientSettings {
        max_response_bytes: cap,
        concurrency: 10,
        ..settings(server.base_url())
    })
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for symbol in &symbols {
        let client = client.clone();
        let t = ticker(symbol);
        tasks.spawn(async move {
            let result = client
                .fetch_daily(&t, d("2021-03-01"), d("2021-03-31"))
                .await;
            (t, result)
        });
    }
    let (mut declared, mut streamed) = (HashSet::new(), HashSet::new());
    while let Some(joined) = tasks.join_next().await {
        let (t, result) = joined.unwrap();
        let err = result.expect_err("an oversized response cannot succeed");
        assert!(!err.is_transient(), "{t}: {}", err.message());
        match chart_error(&err) {
            ChartError::ResponseTooLarge { ticker, size, .. } => {
                assert_eq!(ticker, &t);
                match size {
                    OversizedBody::Declared(n) => {
                        assert_eq!(*n, huge.len() as u64);
                        declared.insert(t.to_string());
                    }
                    OversizedBody::Streamed(n) => {
                        // Stopped at the cap plus at most one chunk, far from 4 MiB.
                        assert!(*n > cap && *n < 2 * 1024 * 1024, "{t}: {n}");
                        streamed.insert(t.to_string());
                    }
                }
            }
            other => panic!("{t}: {other}"),
        }
    }
    assert_eq!((declared.len(), streamed.len()), (5, 5));
    for symbol in &symbols {
        assert_eq!(server.request_count(symbol), 1, "{symbol}: not retried");
    }
}

// ---------------------------------------------------------------- symbol

#[tokio::test]
async fn a_chart_of_another_symbol_fails_permanently_and_lands_nothing() {
    let server = ChartReplayServer::start().await.unwrap();
    // The recorded MSFT chart, served when AAPL is asked for.
    server.add_series("AAPL", &fixture(MSFT)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let client = ChartClient::new(settings(server.base_url())).unwrap();
    let err = fetch_stage(&client, &lake, &request("AAPL"))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{}", err.message());
    assert!(
        matches!(chart_error(&err), ChartError::OtherSymbol { ticker, symbol } if ticker.as_str() == "AAPL" && symbol == "MSFT"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("AAPL") && err.message().contains("MSFT"),
        "{}",
        err.message()
    );
    assert_eq!(server.request_count("AAPL"), 1, "not retried");
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );

    // The symbol is compared without regard to case.
    let lower = String::from_utf8(fixture(MSFT))
        .unwrap()
        .replace("\"symbol\": \"MSFT\"", "\"symbol\": \"msft\"");
    assert!(lower.contains("\"msft\""));
    server.add_series("MSFT", lower.as_bytes()).unwrap();
    let out = fetch_stage(&client, &lake, &request("MSFT")).await.unwrap();
    assert_eq!(out.bars_in_range, 23);
}

/// A source that does not check the symbol itself.
struct Answers(Vec<u8>);

#[async_trait]
impl MarketDataSource for Answers {
    async fn fetch_daily(
        &self,
        _ticker: &Ticker,
        _start: NaiveDate,
        _end: NaiveDate,
    ) -> Result<ChartFetch, StageError> {
        Ok(ChartFetch {
            body: self.0.clone(),
            content: ChartContent::Series(Box::new(parse_chart(&self.0).unwrap())),
            attempts: 1,
        })
    }
}

#[tokio::test]
async fn the_stage_refuses_another_symbol_from_any_source() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let err = fetch_stage(&Answers(fixture(MSFT)), &lake, &request("NVDA"))
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(
        matches!(err.find::<FetchError>(), Some(FetchError::OtherSymbol { symbol, .. }) if symbol == "MSFT"),
        "{}",
        err.message()
    );
    assert!(files_under(dir.path()).is_empty());
}
