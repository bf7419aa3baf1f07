//! Issue 11, the serverless path at scale, locally: many tickers of synthetic
//! daily bars through the four functions chained over moto's SQS and S3 (the
//! stack of the end-to-end tests), with duplicate deliveries at every stage,
//! then an exact check of the lake and the warehouse and a report of
//! throughput, per-function handling time and memory.
//!
//! The event source mappings are played as the template configures them:
//! fetch batches of 1 with up to 5 invocations at once, transform batches of
//! 10 with up to 5, load batches of 10 with up to 2. Duplicates, as SQS's
//! at-least-once delivery makes them:
//!
//! - a share of the records of each batch is also delivered, at the same time,
//!   to a second invocation (two execution environments handling one message);
//! - another share is handled but not deleted (a lost delete, or a visibility
//!   timeout that ran out), so it comes back later in another batch.
//!
//! The stages run one after the other (every fetch, then every transform,
//! then every load), so that each function's handling time and the process's
//! peak memory while it runs can be told apart. The handlers run in this
//! process: the peak memory is this process's peak resident set during the
//! stage (the handler, the driver, the SDK clients and what the earlier
//! stages left resident), an upper bound on the function's own; the release
//! function binaries' own figures come from `make measure-lambdas`.
//!
//! `smoke_load_test_20_tickers_2_years` runs in `make test`; the full run is
//! `make load-test` (500 tickers × 10 years by default, MDP_LOAD_TEST_* to
//! change it), which writes the report to target/load-test.json.

// Shared with lambda_e2e, which uses the parts this test does not.
#[allow(dead_code)]
mod lambda_stack;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{Datelike, NaiveDate};
use lambda_stack::*;
use mdp_core::row::DailyBar;
use mdp_devtools::{ChartReplayServer, synthetic_bars, synthetic_daily_chart};
use mdp_lake::read_history;
use mdp_tests::*;
use serde_json::json;

/// A long visibility timeout: a message comes back only when the test says so.
const VISIBILITY_SECS: u64 = 900;
/// The first day of every synthetic series (a Monday).
const FIRST_DAY: &str = "2010-01-04";
/// Weekdays a year, the sessions of [`synthetic_bars`].
const SESSIONS_PER_YEAR: usize = 261;

/// What to run and how many duplicates to make.
#[derive(Debug, Clone)]
struct Settings {
    tickers: usize,
    years: usize,
    /// Share of records also delivered to a concurrent second invocation.
    duplicate_share: f64,
    /// Share of records handled but not deleted, so delivered again later.
    redeliver_share: f64,
    seed: u64,
    report: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> Settings {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v}: not a valid value")),
                Err(_) => default,
            }
        }
        // The repository's target/ (tests/ is one level down).
        let default_report = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ is inside the repository")
            .join("target")
            .join("load-test.json");
        let settings = Settings {
            tickers: var("MDP_LOAD_TEST_TICKERS", 500),
            years: var("MDP_LOAD_TEST_YEARS", 10),
            duplicate_share: var("MDP_LOAD_TEST_DUPLICATE_SHARE", 0.25),
            redeliver_share: var("MDP_LOAD_TEST_REDELIVER_SHARE", 0.10),
            seed: var("MDP_LOAD_TEST_SEED", 11),
            report: Some(var("MDP_LOAD_TEST_REPORT", default_report)),
        };
        assert!(settings.tickers >= 1 && settings.years >= 1);
        assert!((0.0..=1.0).contains(&settings.duplicate_share));
        assert!((0.0..=1.0).contains(&settings.redeliver_share));
        settings
    }
}

/// The i-th ticker: mostly plain, with some whose partition value is
/// percent-encoded (`^`, `=`) or holds `.` and `-`.
fn ticker_name(i: usize) -> String {
    match i % 10 {
        3 => format!("^L{i:04}"),
        6 => format!("L{i:04}=X"),
        8 => format!("L{i:04}.B"),
        9 => format!("L-{i:04}"),
        _ => format!("L{i:04}"),
    }
}

/// The lake's partition value of a ticker, written here from DESIGN.md
/// section 4 rather than taken from the code under test.
fn partition_value(ticker: &str) -> String {
    ticker
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One ticker's series as the chart server serves it.
struct Series {
    ticker: String,
    bars: Vec<DailyBar>,
}

/// One handler call.
#[derive(Debug, Clone, Copy)]
struct Call {
    records: usize,
    took: Duration,
}

/// What one stage did.
#[derive(Debug, Default)]
struct StageRun {
    calls: Vec<Call>,
    /// Records also delivered to a concurrent second invocation.
    duplicated: usize,
    /// Records left undeleted, hence delivered again.
    redelivered: usize,
    wall: Duration,
    /// This process's resident set when the stage started, and its peak during the stage.
    rss_at_start_kb: Option<u64>,
    peak_rss_kb: Option<u64>,
}

impl StageRun {
    fn summary(&self) -> serde_json::Value {
        let mut ms: Vec<f64> = self
            .calls
            .iter()
            .map(|c| c.took.as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        let total: f64 = ms.iter().sum();
        let records: usize = self.calls.iter().map(|c| c.records).sum();
        let n = ms.len().max(1) as f64;
        json!({
            "invocations": self.calls.len(),
            "records_handled": records,
            "records_duplicated_concurrently": self.duplicated,
            "records_redelivered": self.redelivered,
            "total_ms": round(total),
            "mean_ms": round(total / n),
            "p50_ms": round(percentile(&ms, 0.50)),
            "p95_ms": round(percentile(&ms, 0.95)),
            "max_ms": round(ms.last().copied().unwrap_or(0.0)),
            "mean_ms_per_record": round(total / records.max(1) as f64),
            "stage_wall_s": round(self.wall.as_secs_f64()),
            "rss_at_start_mb": self.rss_at_start_kb.map(|kb| round(kb as f64 / 1024.0)),
            "peak_rss_mb": self.peak_rss_kb.map(|kb| round(kb as f64 / 1024.0)),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Resets this process's peak resident set (VmHWM) to its current one
/// (Linux ≥ 4.0); false where that is not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// This process's peak resident set (VmHWM), in KiB.
fn peak_rss_kb() -> Option<u64> {
    proc_status_kb("VmHWM:")
}

/// This process's resident set (VmRSS), in KiB.
fn rss_kb() -> Option<u64> {
    proc_status_kb("VmRSS:")
}

fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Which records of a stage's batches get duplicated: drawn from a seeded
/// generator, except that the stage's first record gets both kinds (when
/// their share is not 0), so that a small run makes each kind at every stage.
struct Duplicates {
    /// The generator, and how many records the stage has seen.
    rng: Mutex<(fastrand::Rng, usize)>,
    duplicate_share: f64,
    redeliver_share: f64,
    /// Message ids already left undeleted once (each is redelivered once).
    redelivered: Mutex<HashSet<String>>,
}

impl Duplicates {
    fn new(settings: &Settings, stage: Stage) -> Duplicates {
        Duplicates {
            rng: Mutex::new((fastrand::Rng::with_seed(settings.seed ^ stage as u64), 0)),
            duplicate_share: settings.duplicate_share,
            redeliver_share: settings.redeliver_share,
            redelivered: Mutex::new(HashSet::new()),
        }
    }

    /// The records to deliver a second time concurrently, and the ids of those not to delete.
    fn choose(&self, event: &SqsEvent) -> (SqsEvent, HashSet<String>) {
        let mut guard = self.rng.lock().unwrap();
        let (rng, seen) = &mut *guard;
        let mut redelivered = self.redelivered.lock().unwrap();
        let mut twin = SqsEvent::default();
        let mut keep = HashSet::new();
        for record in &event.records {
            let id = record.message_id.clone().unwrap();
            let first = *seen == 0;
            *seen += 1;
            let mut draw = |share: f64| share > 0.0 && (first || rng.f64() < share);
            if draw(self.duplicate_share) {
                twin.records.push(record.clone());
            }
            if draw(self.redeliver_share) && redelivered.insert(id.clone()) {
                keep.insert(id);
            }
        }
        (twin, keep)
    }
}

/// The records the handler reported failed, by message id.
fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn timed_call(stack: &Stack, stage: Stage, event: SqsEvent) -> (SqsBatchResponse, Call) {
    let records = event.records.len();
    let started = Instant::now();
    let response = stack.call(stage, event).await;
    (
        response,
        Call {
            records,
            took: started.elapsed(),
        },
    )
}

/// One poller of the stage's event source mapping, until the queue is empty.
async fn poller(
    stack: Arc<Stack>,
    stage: Stage,
    batch_size: i32,
    duplicates: Arc<Duplicates>,
) -> StageRun {
    let url = stack.queue_of(stage).to_string();
    let mut run = StageRun::default();
    loop {
        let event = receive_up_to(&stack.sqs, &url, batch_size).await;
        if event.records.is_empty() {
            // Other pollers' messages in flight may still come back.
            if stack.queue_len(&url).await == 0 {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let (twin, keep) = duplicates.choose(&event);
        let (response, call) = if twin.records.is_empty() {
            timed_call(&stack, stage, event.clone()).await
        } else {
            run.duplicated += twin.records.len();
            let ((response, call), (twin_response, twin_call)) = tokio::join!(
                timed_call(&stack, stage, event.clone()),
                timed_call(&stack, stage, twin)
            );
            assert!(
                twin_response.batch_item_failures.is_empty(),
                "a concurrent duplicate failed: {:?}",
                failed_ids(&twin_response)
            );
            run.calls.push(twin_call);
            (response, call)
        };
        run.calls.push(call);
        assert!(
            response.batch_item_failures.is_empty(),
            "records failed: {:?}",
            failed_ids(&response)
        );
        for record in &event.records {
            let handle = record.receipt_handle.clone().unwrap();
            if keep.contains(record.message_id.as_deref().unwrap()) {
                // Not deleted: visible again at once, received by some poller later.
                run.redelivered += 1;
                stack
                    .sqs
                    .change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                stack
                    .sqs
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

/// The stage's queue drained by `concurrency` pollers of `batch_size`.
async fn run_stage(
    stack: &Arc<Stack>,
    stage: Stage,
    batch_size: i32,
    concurrency: usize,
    settings: &Settings,
) -> StageRun {
    let duplicates = Arc::new(Duplicates::new(settings, stage));
    let rss_reset = reset_peak_rss();
    let rss_at_start_kb = rss_kb();
    let started = Instant::now();
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        // Each poller on a thread of its own, driven there (the handlers'
        // futures cannot be proven `Send` for `spawn`); their I/O runs on
        // the runtime's workers.
        let (stack, duplicates) = (stack.clone(), duplicates.clone());
        let runtime = tokio::runtime::Handle::current();
        pollers
            .spawn_blocking(move || runtime.block_on(poller(stack, stage, batch_size, duplicates)));
    }
    let mut run = StageRun {
        rss_at_start_kb,
        ..StageRun::default()
    };
    while let Some(joined) = pollers.join_next().await {
        let one = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        run.calls.extend(one.calls);
        run.duplicated += one.duplicated;
        run.redelivered += one.redelivered;
    }
    run.wall = started.elapsed();
    run.peak_rss_kb = if rss_reset { peak_rss_kb() } else { None };
    run
}

/// What the exact check counted.
struct Checked {
    warehouse_rows: usize,
    /// Distinct (ticker, date) in the warehouse, as Postgres counted them.
    distinct_ticker_dates: usize,
    lake_partitions: usize,
}

/// The lake and the warehouse hold exactly the synthetic series: every
/// partition, no other; per ticker the bars' count, dates and values, no
/// duplicate (ticker, date); warehouse rows equal to the lake's; indicators
/// that follow from the bars; no message left in any queue.
async fn check_exactly(stack: &Arc<Stack>, series: &[Arc<Series>]) -> Checked {
    for (name, url) in [
        ("fetch", &stack.queues.fetch),
        ("transform", &stack.queues.transform),
        ("load", &stack.queues.load),
        ("fetch DLQ", &stack.queues.fetch_dlq),
        ("transform DLQ", &stack.queues.transform_dlq),
        ("load DLQ", &stack.queues.load_dlq),
    ] {
        assert_eq!(
            stack.queue_len(url).await,
            0,
            "messages left in the {name} queue"
        );
    }

    let expected_partitions: BTreeSet<String> = series
        .iter()
        .flat_map(|s| {
            let years: BTreeSet<i32> = s.bars.iter().map(|b| b.date.year()).collect();
            let value = partition_value(&s.ticker);
            years.into_iter().map(move |y| {
                format!("lake/curated/market_data/ticker={value}/year={y}/part-0.parquet")
            })
        })
        .collect();
    let partitions: BTreeSet<String> = stack
        .s3_keys_under("lake/curated/market_data/")
        .await
        .into_iter()
        .collect();
    let missing: Vec<_> = expected_partitions.difference(&partitions).collect();
    let extra: Vec<_> = partitions.difference(&expected_partitions).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "lake partitions: {} missing {:?}…, {} unexpected {:?}…",
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)]
    );

    // Counted by the database itself: rows, distinct dates, first and last date.
    let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    let schema = stack.scratch.schema.clone().unwrap();
    let counted: Vec<(String, i64, i64, String, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT ticker, count(*), count(DISTINCT date), min(date)::text, max(date)::text \
             FROM \"{schema}\".fact_market_data GROUP BY ticker"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    let counted: BTreeMap<String, (i64, i64, NaiveDate, NaiveDate)> = counted
        .into_iter()
        .map(|(t, n, distinct, lo, hi)| (t, (n, distinct, d(&lo), d(&hi))))
        .collect();
    let expected_counts: BTreeMap<String, (i64, i64, NaiveDate, NaiveDate)> = series
        .iter()
        .map(|s| {
            let n = s.bars.len() as i64;
            let (lo, hi) = (s.bars[0].date, s.bars[s.bars.len() - 1].date);
            (s.ticker.clone(), (n, n, lo, hi))
        })
        .collect();
    let wrong: Vec<String> = expected_counts
        .iter()
        .filter(|(t, want)| counted.get(*t) != Some(want))
        .map(|(t, want)| format!("{t}: {:?}, expected {want:?}", counted.get(t)))
        .chain(
            counted
                .keys()
                .filter(|t| !expected_counts.contains_key(*t))
                .map(|t| format!("{t}: not a ticker of the run")),
        )
        .collect();
    assert!(
        wrong.is_empty(),
        "per ticker (rows, distinct dates, first and last date), {} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Row by row, a few tickers at a time.
    let mut checks = tokio::task::JoinSet::new();
    let mut rows = 0;
    for chunk in series.chunks(series.len().div_ceil(4)) {
        let (stack, chunk) = (stack.clone(), chunk.to_vec());
        checks.spawn(async move {
            let mut rows = 0;
            for s in chunk {
                rows += check_ticker(&stack, &s).await;
            }
            rows
        });
    }
    while let Some(n) = checks.join_next().await {
        rows += n.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }
    Checked {
        warehouse_rows: rows,
        distinct_ticker_dates: counted.values().map(|c| c.1 as usize).sum(),
        lake_partitions: partitions.len(),
    }
}

/// One ticker: warehouse rows equal to the lake's (timestamps included), bars
/// equal to the series served, SMA 7 and the daily return as DESIGN.md
/// section 5 defines them. Returns the rows checked.
async fn check_ticker(stack: &Stack, series: &Series) -> usize {
    let t = ticker(&series.ticker);
    let warehouse = stack.warehouse.read_rows(Some(&t)).await.unwrap();
    let lake = read_history(&stack.validate.lake, &t).await.unwrap();
    assert_eq!(warehouse.len(), series.bars.len(), "{t}: warehouse rows");
    assert!(
        warehouse == lake,
        "{t}: the warehouse rows differ from the lake's"
    );
    let closes: Vec<f64> = series.bars.iter().map(|b| b.close).collect();
    for (i, (row, bar)) in warehouse.iter().zip(&series.bars).enumerate() {
        assert_eq!(row.ticker, series.ticker);
        assert_eq!(&row.bar, bar, "{t}: the bar of {}", bar.date);
        let sma_7 = (i >= 6).then(|| closes[i - 6..=i].iter().sum::<f64>() / 7.0);
        let daily_return = (i >= 1).then(|| closes[i] / closes[i - 1] - 1.0);
        for (name, got, want) in [
            ("sma_7", row.indicators.sma_7, sma_7),
            ("daily_return", row.indicators.daily_return, daily_return),
        ] {
            match (got, want) {
                (None, None) => {}
                (Some(a), Some(b)) => assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "{t} {name} on {}: {a} vs {b}",
                    bar.date
                ),
                _ => panic!("{t} {name} on {}: {got:?} vs {want:?}", bar.date),
            }
        }
    }
    warehouse.len()
}

/// The whole load test; returns the report, printed and written where the settings say.
async fn load_test(settings: &Settings) -> serde_json::Value {
    let first_day = d(FIRST_DAY);
    let sessions = settings.years * SESSIONS_PER_YEAR;
    let chart = ChartReplayServer::start().await.unwrap();
    let series: Vec<Arc<Series>> = (0..settings.tickers)
        .map(|i| {
            let ticker = ticker_name(i);
            let seed = settings.seed * 100_003 + i as u64;
            chart
                .add_series(
                    &ticker,
                    &synthetic_daily_chart(&ticker, first_day, sessions, seed),
                )
                .unwrap();
            Arc::new(Series {
                ticker,
                bars: synthetic_bars(first_day, sessions, seed),
            })
        })
        .collect();
    let last_day = series[0].bars[sessions - 1].date;
    let stack = Arc::new(stack_with_visibility(&chart, 3, VISIBILITY_SECS).await);

    let load_before = mdp_devtools::load_average();
    let started = Instant::now();
    reset_peak_rss();
    let rss_at_start_kb = rss_kb();
    let tickers: Vec<&str> = series.iter().map(|s| s.ticker.as_str()).collect();
    let event = chain_event(&tickers, FIRST_DAY, &last_day.to_string());
    let validate_started = Instant::now();
    let planned = stack.validate.handle(event, last_day).await.unwrap();
    let validate = StageRun {
        calls: vec![Call {
            records: 1,
            took: validate_started.elapsed(),
        }],
        wall: validate_started.elapsed(),
        rss_at_start_kb,
        peak_rss_kb: peak_rss_kb(),
        ..StageRun::default()
    };
    assert_eq!(planned.sent, tickers, "one fetch planned per ticker");
    // The template's event source mappings: BatchSize and MaximumConcurrency.
    let fetch = run_stage(&stack, Stage::Fetch, 1, 5, settings).await;
    let transform = run_stage(&stack, Stage::Transform, 10, 5, settings).await;
    let load = run_stage(&stack, Stage::Load, 10, 2, settings).await;
    let wall = started.elapsed();
    let load_after = mdp_devtools::load_average();

    let checked = check_exactly(&stack, &series).await;
    let bars = settings.tickers * sessions;
    assert_eq!(checked.warehouse_rows, bars);
    assert_eq!(checked.distinct_ticker_dates, bars);
    let calendar_days = (last_day - first_day).num_days() as usize + 1;
    let report = json!({
        "tickers": settings.tickers,
        "years": settings.years,
        "first_date": first_day.to_string(),
        "last_date": last_day.to_string(),
        "ticker_days": bars,
        "calendar_ticker_days": settings.tickers * calendar_days,
        "build": if cfg!(debug_assertions) { "debug" } else { "optimised" },
        "duplicate_share": settings.duplicate_share,
        "redeliver_share": settings.redeliver_share,
        "seed": settings.seed,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_average_before_after": [load_before, load_after],
        "wall_s": round(wall.as_secs_f64()),
        "ticker_days_per_s": round(bars as f64 / wall.as_secs_f64()),
        "rows_per_s": round(checked.warehouse_rows as f64 / wall.as_secs_f64()),
        "functions": {
            "validate": validate.summary(),
            "fetch": fetch.summary(),
            "transform": transform.summary(),
            "load": load.summary(),
        },
        "peak_rss_note": "in-process handlers: this test process's resident set when the stage started and its \
            peak while the stage ran (the stage's concurrent invocations, plus the driver, the in-process chart \
            server holding every series, the expected bars and what earlier stages left resident): an upper \
            bound on the function's own; moto and Postgres are other processes. Per-binary figures: make measure-lambdas",
        "checked": {
            "warehouse_rows": checked.warehouse_rows,
            "distinct_ticker_dates": checked.distinct_ticker_dates,
            "lake_partitions": checked.lake_partitions,
            "messages_left_in_queues_and_dlqs": 0,
        },
    });
    print_report(&report);
    if let Some(path) = &settings.report {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        println!("report written to {}", path.display());
    }
    // Every stage saw the duplicates it was meant to.
    for (name, run) in [
        ("fetch", &fetch),
        ("transform", &transform),
        ("load", &load),
    ] {
        if settings.duplicate_share > 0.0 {
            assert!(run.duplicated > 0, "{name}: no concurrent duplicate made");
        }
        if settings.redeliver_share > 0.0 {
            assert!(run.redelivered > 0, "{name}: no redelivery made");
        }
    }
    Arc::into_inner(stack)
        .expect("every poller has finished")
        .close()
        .await;
    report
}

fn print_report(report: &serde_json::Value) {
    println!(
        "load test ({} build): {} tickers × {} years = {} ticker-days ({} .. {}), \
         duplicate share {} concurrent + {} redelivered",
        report["build"].as_str().unwrap(),
        report["tickers"],
        report["years"],
        report["ticker_days"],
        report["first_date"].as_str().unwrap(),
        report["last_date"].as_str().unwrap(),
        report["duplicate_share"],
        report["redeliver_share"],
    );
    println!(
        "wall {} s: {} ticker-days/s, {} rows/s into the warehouse ({} cores, load average before/after {})",
        report["wall_s"],
        report["ticker_days_per_s"],
        report["rows_per_s"],
        report["cores"],
        report["load_average_before_after"]
    );
    println!(
        "{:<10} {:>6} {:>8} {:>6} {:>6} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "function",
        "calls",
        "records",
        "dup",
        "redel",
        "total ms",
        "mean ms",
        "p95 ms",
        "max ms",
        "stage s",
        "RSS start",
        "peak RSS"
    );
    for name in ["validate", "fetch", "transform", "load"] {
        let f = &report["functions"][name];
        let mb = |key: &str| {
            f[key]
                .as_f64()
                .map_or("-".to_string(), |mb| format!("{mb:.1} MB"))
        };
        let count = |key: &str| f[key].as_u64().unwrap();
        println!(
            "{name:<10} {:>6} {:>8} {:>6} {:>6} {:>10.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9} {:>9}",
            count("invocations"),
            count("records_handled"),
            count("records_duplicated_concurrently"),
            count("records_redelivered"),
            f["total_ms"].as_f64().unwrap(),
            f["mean_ms"].as_f64().unwrap(),
            f["p95_ms"].as_f64().unwrap(),
            f["max_ms"].as_f64().unwrap(),
            f["stage_wall_s"].as_f64().unwrap(),
            mb("rss_at_start_mb"),
            mb("peak_rss_mb")
        );
    }
    println!(
        "checked: {} warehouse rows (no duplicate ticker-date, equal to the lake), {} lake partitions, no message left in any queue or DLQ",
        report["checked"]["warehouse_rows"], report["checked"]["lake_partitions"]
    );
}

/// `make test`: a bounded run (20 tickers × 2 years, a third of the records
/// duplicated), the same checks as the full one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_load_test_20_tickers_2_years() {
    let settings = Settings {
        tickers: 20,
        years: 2,
        duplicate_share: 0.3,
        redeliver_share: 0.15,
        seed: 7,
        report: None,
    };
    let report = load_test(&settings).await;
    assert_eq!(report["checked"]["warehouse_rows"], 20 * 2 * 261);
    // 522 weekdays from Monday 2010-01-04 end on Tuesday 2012-01-03: three
    // partitions (2010, 2011, 2012) per ticker.
    assert_eq!(report["last_date"], "2012-01-03");
    assert_eq!(report["checked"]["lake_partitions"], 20 * 3);
}

/// `make load-test`: 500 tickers × 10 years by default (MDP_LOAD_TEST_TICKERS,
/// _YEARS, _DUPLICATE_SHARE, _REDELIVER_SHARE, _SEED, _REPORT).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "minutes long: make load-test"]
async fn load_test_at_scale() {
    load_test(&Settings::from_env()).await;
}

#[test]
fn partition_values_and_percentiles() {
    assert_eq!(partition_value("^L0003"), "%5EL0003");
    assert_eq!(partition_value("L0006=X"), "L0006%3DX");
    assert_eq!(partition_value("L-0009"), "L-0009");
    assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.95), 4.0);
    assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
    let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
    assert_eq!(percentile(&twenty, 0.95), 19.0);
    for i in 0..500 {
        mdp_core::Ticker::parse(&ticker_name(i)).unwrap();
    }
}
