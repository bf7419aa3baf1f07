//! Requests stay within the process's budget, with the real client against
//! local servers: at most `MARKET_DATA_API_CONCURRENCY` in flight (retries
//! included, clones sharing it) and starts spaced by `MARKET_DATA_API_RATE`.
//! The hostile responses are tested in limits_response.rs.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mdp_chart::{ChartClient, ChartClientSettings};
use mdp_core::source::MarketDataSource;
use mdp_devtools::{ChartReplayServer, synthetic_daily_chart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use common::{MSFT, d, fixture, settings, ticker};

/// A chart server that counts the requests it is working on at once. A
/// request counts from its arrival until its answer starts, which is
/// inside the client's hold of a concurrency slot. Every symbol's first
/// request gets a 503 when `fail_first` (so retries are counted too).
struct CountingServer {
    base_url: String,
    max_in_flight: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn counting_server(hold: Duration, fail_first: bool) -> CountingServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v8/finance/chart", listener.local_addr().unwrap());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let (max, count) = (max_in_flight.clone(), requests.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let (in_flight, max, count, seen) =
                (in_flight.clone(), max.clone(), count.clone(), seen.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                count.fetch_add(1, Ordering::SeqCst);
                let text = String::from_utf8_lossy(&head).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("/");
                let symbol = path
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                tokio::time::sleep(hold).await;
                let first = seen.lock().unwrap().insert(symbol.clone());
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let (status, body) = if fail_first && first {
                    ("503 Service Unavailable", b"unavailable".to_vec())
                } else {
                    (
                        "200 OK",
                        synthetic_daily_chart(
                            &symbol,
                            NaiveDate::from_ymd_opt(2021, 3, 1).unwrap(),
                            20,
                            1,
                        ),
                    )
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    CountingServer {
        base_url,
        max_in_flight,
        requests,
        task,
    }
}

#[tokio::test]
async fn at_most_the_configured_number_of_requests_are_in_flight() {
    let server = counting_server(Duration::from_millis(100), true).await;
    let client = ChartClient::new(ChartClientSettings {
        concurrency: 2,
        ..settings(server.base_url.clone())
    })
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        // Clones share the budget: it is the process's, not the clone's.
        let client = client.clone();
        tasks.spawn(async move {
            let t = ticker(&format!("T{i}"));
            client
                .fetch_daily(&t, d("2021-03-01"), d("2021-03-05"))
                .await
                .map(|got| got.attempts)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let attempts = joined
            .unwrap()
            .unwrap_or_else(|e| panic!("{}", e.message()));
        assert_eq!(attempts, 2, "a 503, then the chart");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 12);
    let max = server.max_in_flight.load(Ordering::SeqCst);
    assert!((1..=2).contains(&max), "{max} requests in flight at once");
}

#[tokio::test]
async fn requests_are_spaced_by_the_configured_rate() {
    let server = ChartReplayServer::start().await.unwrap();
    server.add_series("MSFT", &fixture(MSFT)).unwrap();
    let client = ChartClient::new(ChartClientSettings {
        concurrency: 10,
        rate_per_second: Some(20.0),
        ..settings(server.base_url())
    })
    .unwrap();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let client = client.clone();
        tasks.spawn(async move {
            client
                .fetch_daily(&ticker("MSFT"), d("2021-03-01"), d("2021-03-05"))
                .await
                .map(|got| got.attempts)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        assert_eq!(joined.unwrap().unwrap(), 1);
    }
    let elapsed = started.elapsed();
    assert_eq!(server.request_count("MSFT"), 10);
    // 20 per second: the tenth starts 9 × 50 ms after the first (lower bound only).
    assert!(elapsed >= Duration::from_millis(440), "{elapsed:?}");
}
