//! A daily backfill of one ticker from the local chart server into the lake
//! and Postgres, in this process and timed per stage, and the indicators
//! over a long series of closes.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mdp_core::messages::ScheduleEvent;
use mdp_core::{Config, StageError};
use mdp_devtools::{ChartReplayServer, synthetic_bars, synthetic_daily_chart};
use mdp_pipeline::{Pipeline, TickerOutcome};
use mdp_transform::compute_indicators;

use super::figures::{Figures, Unit};

/// Times the backfill of `years` of daily bars of one ticker (a scratch
/// schema `mdp_bench` is recreated) and records its stages.
pub async fn bench_one_ticker_backfill(
    years: u32,
    postgres_url: &str,
    figures: &mut Figures,
) -> Result<String, StageError> {
    let sessions = years as usize * 252;
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
        ("WAREHOUSE_URL", postgres_url.to_string()),
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
    let about = |stage: &str| {
        format!(
            "{stage} of a {years}-year backfill of one ticker ({} bars) into Postgres, in process",
            t.rows_fetched
        )
    };
    let stages = [
        ("start (connect)", "start", setup_time),
        ("validate", "validate", summary.validate_time),
        ("fetch", "fetch", t.fetch_time),
        ("transform", "transform", t.transform_time),
        ("load", "load", t.load_time),
        ("total", "total", total_time),
    ];
    for (_, key, time) in stages {
        figures.add(
            &format!("backfill_1_ticker.{key}"),
            ms(time),
            Unit::Milliseconds,
            about(key),
        );
    }

    let mut report = format!(
        "{years}-year daily backfill of one ticker ({} bars) from a local chart server into Postgres:\n",
        t.rows_fetched
    );
    for (label, _, time) in stages {
        let note = match label {
            "transform" => format!("  ({} rows written)", t.rows_written),
            "load" => format!("  ({} rows loaded)", t.rows_loaded),
            "total" => "  (target < 300 ms)".to_string(),
            _ => String::new(),
        };
        report.push_str(&format!("  {label:<18} {:>8.1} ms{note}\n", ms(time)));
    }
    Ok(report)
}

/// Runs of the indicators; the best is kept (the least disturbed by other
/// work on the machine).
const INDICATOR_RUNS: usize = 5;

/// Times the indicators over `bars` closes (best of [`INDICATOR_RUNS`]).
pub fn bench_indicators(bars: usize, figures: &mut Figures) -> String {
    let closes = random_walk(bars);
    let mut best = Duration::MAX;
    for _ in 0..INDICATOR_RUNS {
        let started = Instant::now();
        let out = compute_indicators(&closes);
        best = best.min(started.elapsed());
        std::hint::black_box(out);
    }
    figures.add(
        "indicators",
        ms(best),
        Unit::Milliseconds,
        format!("every indicator over {bars} closes, best of {INDICATOR_RUNS}"),
    );
    format!(
        "indicators over {bars} bars: {:.1} ms (best of {INDICATOR_RUNS}; target < 300 ms)\n",
        ms(best)
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
