//! A local HTTP server that imitates the chart API from recorded responses.
//!
//! A recorded series answers any `period1`/`period2` with the bars stamped
//! inside that window, like the real API, so incremental runs see the same
//! bars a backfill would. Scripted replies (429 with `Retry-After`, 5xx,
//! slow or truncated bodies) are served first, in order, for fault tests.
//! Unknown symbols get the recorded 404. The client under test is the real
//! one: only the far end is local.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Datelike, NaiveDate, Weekday};
use mdp_core::row::DailyBar;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The recorded 404 body for an unknown symbol (see tests/fixtures/yahoo/SOURCES.md).
const NOT_FOUND_BODY: &[u8] =
    include_bytes!("../../../tests/fixtures/yahoo/six_error_404_not_found.json");

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra headers and body, sent whole.
    Fixed {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Waits this long before answering from the recorded series (timeouts).
    Delayed(Duration),
    /// Declares the full length, sends only the first `sent` bytes of the
    /// recorded answer, then closes (a connection cut mid-body).
    Truncated { sent: usize },
    /// These bytes verbatim (status line, headers, body), then closes: for
    /// responses the other replies cannot make (chunked, no length, huge).
    Raw(Vec<u8>),
}

impl Reply {
    pub fn status(status: u16, body: &str) -> Reply {
        Reply::Fixed {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn too_many_requests(retry_after: &str) -> Reply {
        Reply::Fixed {
            status: 429,
            headers: vec![("Retry-After".into(), retry_after.into())],
            body: b"Too Many Requests\r\n".to_vec(),
        }
    }
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    pub symbol: String,
    pub period1: Option<i64>,
    pub period2: Option<i64>,
    pub user_agent: Option<String>,
}

#[derive(Default)]
struct State {
    series: HashMap<String, Arc<Value>>,
    scripted: HashMap<String, VecDeque<Reply>>,
    received: Vec<ReceivedRequest>,
}

pub struct ChartReplayServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl ChartReplayServer {
    /// Listens on a free loopback port.
    pub async fn start() -> std::io::Result<ChartReplayServer> {
        ChartReplayServer::start_on(0).await
    }

    /// Listens on a given loopback port (0: any free one).
    pub async fn start_on(port: u16) -> std::io::Result<ChartReplayServer> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve_connection(stream, state).await;
                });
            }
        });
        Ok(ChartReplayServer { addr, state, task })
    }

    /// The value for `YAHOO_FINANCE_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v8/finance/chart", self.addr)
    }

    /// Serves `body` (a recorded chart response) for `symbol`.
    pub fn add_series(&self, symbol: &str, body: &[u8]) -> Result<(), serde_json::Error> {
        let value: Value = serde_json::from_slice(body)?;
        self.state
            .lock()
            .expect("replay state")
            .series
            .insert(symbol.to_ascii_uppercase(), Arc::new(value));
        Ok(())
    }

    /// Queues a scripted reply for `symbol`, served before the recorded series.
    pub fn push_reply(&self, symbol: &str, reply: Reply) {
        self.state
            .lock()
            .expect("replay state")
            .scripted
            .entry(symbol.to_ascii_uppercase())
            .or_default()
            .push_back(reply);
    }

    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.state.lock().expect("replay state").received.clone()
    }

    pub fn request_count(&self, symbol: &str) -> usize {
        self.received()
            .iter()
            .filter(|r| r.symbol.eq_ignore_ascii_case(symbol))
            .count()
    }
}

impl Drop for ChartReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connection(mut stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    let user_agent = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("user-agent"))
        .map(|(_, v)| v.trim().to_string());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let symbol = mdp_core::encoding::percent_decode(path.rsplit('/').next().unwrap_or(""))
        .to_ascii_uppercase();
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse::<i64>().ok())
    };
    let request = ReceivedRequest {
        symbol: symbol.clone(),
        period1: param("period1"),
        period2: param("period2"),
        user_agent,
    };
    let (scripted, series) = {
        let mut st = state.lock().expect("replay state");
        st.received.push(request.clone());
        let scripted = st.scripted.get_mut(&symbol).and_then(VecDeque::pop_front);
        (scripted, st.series.get(&symbol).cloned())
    };
    let recorded = || match &series {
        Some(full) => (200, slice_series(full, request.period1, request.period2)),
        None => (404, NOT_FOUND_BODY.to_vec()),
    };
    match scripted {
        Some(Reply::Fixed {
            status,
            headers,
            body,
        }) => write_response(&mut stream, status, &headers, &body, None).await,
        Some(Reply::Delayed(wait)) => {
            tokio::time::sleep(wait).await;
            let (status, body) = recorded();
            write_response(&mut stream, status, &[], &body, None).await
        }
        Some(Reply::Truncated { sent }) => {
            let (status, body) = recorded();
            write_response(&mut stream, status, &[], &body, Some(sent)).await
        }
        Some(Reply::Raw(bytes)) => {
            stream.write_all(&bytes).await?;
            stream.flush().await?;
            stream.shutdown().await
        }
        None => {
            let (status, body) = recorded();
            write_response(&mut stream, status, &[], &body, None).await
        }
    }
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    cut_after: Option<usize>,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json;charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    let sent = cut_after.unwrap_or(body.len()).min(body.len());
    stream.write_all(&body[..sent]).await?;
    stream.flush().await?;
    stream.shutdown().await
}

/// The recorded response restricted to bars stamped in `period1..=period2`
/// (the real API includes a bar stamped exactly at period2). With no bar in
/// the window the answer is a result without timestamps, as the API gives.
fn slice_series(full: &Value, period1: Option<i64>, period2: Option<i64>) -> Vec<u8> {
    let mut out = full.clone();
    let result = &mut out["chart"]["result"][0];
    let timestamps: Vec<i64> = result["timestamp"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let lo = period1.unwrap_or(i64::MIN);
    let hi = period2.unwrap_or(i64::MAX);
    let keep: Vec<usize> = (0..timestamps.len())
        .filter(|&i| timestamps[i] >= lo && timestamps[i] <= hi)
        .collect();
    let pick = |arr: &Value| -> Value {
        Value::Array(
            keep.iter()
                .map(|&i| arr.get(i).cloned().unwrap_or(Value::Null))
                .collect(),
        )
    };
    if keep.is_empty() {
        if let Some(obj) = result.as_object_mut() {
            obj.remove("timestamp");
            obj.remove("events");
        }
        result["indicators"] = json!({"quote": [{}], "adjclose": [{}]});
    } else {
        result["timestamp"] = pick(&result["timestamp"]);
        if let Some(quote) = result["indicators"]["quote"][0].as_object_mut() {
            for arr in quote.values_mut() {
                *arr = pick(arr);
            }
        }
        if let Some(adj) = result["indicators"]["adjclose"][0].as_object_mut() {
            for arr in adj.values_mut() {
                *arr = pick(arr);
            }
        }
    }
    serde_json::to_vec(&out).expect("a JSON value serialises")
}

/// Synthetic daily bars: `sessions` weekdays from `first_day` on, a
/// deterministic random walk from `seed`. Benchmarks use them for years of
/// history, as chart responses ([`synthetic_daily_chart`]) or as lake rows.
pub fn synthetic_bars(first_day: NaiveDate, sessions: usize, seed: u64) -> Vec<DailyBar> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bars = Vec::with_capacity(sessions);
    let mut day = first_day;
    let mut price = 50.0 + rng.f64() * 100.0;
    while bars.len() < sessions {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            let open = price;
            price *= 1.0 + (rng.f64() - 0.5) * 0.04;
            bars.push(DailyBar {
                date: day,
                open: Some(open),
                high: Some(open.max(price) * (1.0 + rng.f64() * 0.01)),
                low: Some(open.min(price) * (1.0 - rng.f64() * 0.01)),
                close: price,
                adj_close: Some(price * 0.98),
                volume: Some(rng.i64(1_000_000..50_000_000)),
            });
        }
        day = day.succ_opt().expect("date in range");
    }
    bars
}

/// A well-formed daily chart response of [`synthetic_bars`] for `symbol`,
/// stamped 14:30 UTC (a New York session open).
pub fn synthetic_daily_chart(
    symbol: &str,
    first_day: NaiveDate,
    sessions: usize,
    seed: u64,
) -> Vec<u8> {
    let bars = synthetic_bars(first_day, sessions, seed);
    let column = |f: fn(&DailyBar) -> Option<f64>| bars.iter().map(f).collect::<Vec<_>>();
    let timestamps: Vec<i64> = bars
        .iter()
        .map(|b| {
            b.date
                .and_hms_opt(14, 30, 0)
                .expect("valid time")
                .and_utc()
                .timestamp()
        })
        .collect();
    let price = bars.last().map_or(100.0, |b| b.close);
    let body = json!({"chart": {"result": [{
        "meta": {
            "currency": "USD", "symbol": symbol, "exchangeName": "NMS", "fullExchangeName": "NasdaqGS",
            "instrumentType": "EQUITY", "gmtoffset": -18000, "timezone": "EST",
            "exchangeTimezoneName": "America/New_York", "regularMarketPrice": price,
            "fiftyTwoWeekHigh": price * 1.2, "fiftyTwoWeekLow": price * 0.8,
            "longName": format!("{symbol} Synthetic Inc."), "shortName": symbol,
            "dataGranularity": "1d", "range": ""
        },
        "timestamp": timestamps,
        "indicators": {
            "quote": [{
                "open": column(|b| b.open), "high": column(|b| b.high), "low": column(|b| b.low),
                "close": column(|b| Some(b.close)),
                "volume": bars.iter().map(|b| b.volume).collect::<Vec<_>>()
            }],
            "adjclose": [{"adjclose": column(|b| b.adj_close)}]
        }
    }], "error": null}});
    serde_json::to_vec(&body).expect("a JSON value serialises")
}
