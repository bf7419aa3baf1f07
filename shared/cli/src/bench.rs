//! `mdp bench`: a 10-year daily backfill of one ticker from a local chart
//! server into the lake and Postgres, timed per stage, and the indicators over
//! 1,000,000 bars. Run it optimised (`make bench`).

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mdp_core::messages::ScheduleEvent;
use mdp_core::{Config, StageError};
use mdp_devtools::{ChartReplayServer, synthetic_bars, synthetic_daily_chart};
use mdp_pipeline::{Pipeline, TickerOutcome};
use mdp_transform::compute_indicators;

pub struct BenchOptions {
    pub years: u32,
    pub indicator_bars: usize,
    /// Postgres to load into (a scratch schema `mdp_bench` is recreated).
    pub postgres_url: String,
}

pub async fn run_bench(options: &BenchOptions) -> Result<String, StageError> {
    let mut report = String::new();
    let sessions = options.years as usize * 252;
    let first_day: NaiveDate = "2015-01-02".parse().expect("valid date");
    let body = synthetic_daily_chart("BENCH", first_day, sessions, 42);
    let server = ChartReplayServer::start()
        .await
        .map_err(|e| StageError::permanent(format!("starting the local chart server: {e}")))?;
    server
        .add_series("BENCH", &body)
        .expect("synthetic chart is JSON");

    let lake_dir = std::env::temp_dir().join(format!("mdp-bench-{}", std::process::id()));
    let vars = [
        ("YAHOO_FINANCE_API_BASE_URL", server.base_url()),
        (
            "MARKET_DATA_LAKE_URI",
            format!("file://{}", lake_dir.display()),
        ),
        ("WAREHOUSE_URL", options.postgres_url.clone()),
        ("WAREHOUSE_SCHEMA", "mdp_bench".to_string()),
    ];
    let config =
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .map_err(|e| StageError::permanent(e.to_string()))?;

    // A fresh, empty table each time: the figure is a first backfill. Creating
    // the table is a once-per-deployment step, so it happens before the clock.
    let setup = mdp_warehouse::connect_rows(&config).await?;
    setup.drop_table().await?;
    setup.migrate().await?;
    setup.close().await;

    // The same series the server serves: its last session ends the range.
    let last_day = synthetic_bars(first_day, sessions, 42)
        .last()
        .map_or(first_day, |b| b.date);
    let total = Instant::now();
    let pipeline = Pipeline::from_config(config).await?;
    let setup_time = total.elapsed();
    let event = ScheduleEvent {
        tickers: Some(vec!["BENCH".into()]),
        start: Some(first_day),
        end: Some(last_day),
        date: None,
    };
    let summary = pipeline.run(&event, last_day).await?;
    let total_time = total.elapsed();
    pipeline.warehouse.close().await;
    let _ = std::fs::remove_dir_all(&lake_dir);
    let t = &summary.tickers[0];
    if let TickerOutcome::Failed(e) = &t.outcome {
        return Err(e.clone());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    report.push_str(&format!(
        "{}-year daily backfill of one ticker ({} bars) from a local chart server into Postgres:\n",
        options.years, t.rows_fetched
    ));
    report.push_str(&format!(
        "  start (connect)    {:>8.1} ms\n",
        ms(setup_time)
    ));
    report.push_str(&format!(
        "  validate           {:>8.1} ms\n",
        ms(summary.validate_time)
    ));
    report.push_str(&format!(
        "  fetch              {:>8.1} ms\n",
        ms(t.fetch_time)
    ));
    report.push_str(&format!(
        "  transform          {:>8.1} ms  ({} rows written)\n",
        ms(t.transform_time),
        t.rows_written
    ));
    report.push_str(&format!(
        "  load               {:>8.1} ms  ({} rows loaded)\n",
        ms(t.load_time),
        t.rows_loaded
    ));
    report.push_str(&format!(
        "  total              {:>8.1} ms  (target < 300 ms)\n",
        ms(total_time)
    ));

    let closes = random_walk(options.indicator_bars);
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let out = compute_indicators(&closes);
        best = best.min(started.elapsed());
        std::hint::black_box(out);
    }
    report.push_str(&format!(
        "indicators over {} bars: {:.1} ms (best of 3; target < 300 ms)\n",
        options.indicator_bars,
        ms(best)
    ));
    Ok(report)
}

/// A deterministic random walk of closes.
fn random_walk(n: usize) -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut price = 100.0;
    (0..n)
        .map(|_| {
            price *= 1.0 + (rng.f64() - 0.5) * 0.04;
            price
        })
        .collect()
}

/// This process's peak resident memory (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
