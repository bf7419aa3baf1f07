//! `mdp bench` (`make bench`): every figure of issue 11's goal table,
//! measured with the pipeline's own code on the local chart server
//! (synthetic series) and Postgres, printed as a report and written as JSON
//! with the machine-independent ratios `make bench-check` guards
//! (`infra/bench/check_bench.py`). Run it optimised.
//!
//! - [`backfill`]: one ticker's backfill in process, per stage; the indicators;
//! - [`runs`]: `mdp run` in a child process: a fresh 7-ticker backfill, one
//!   new day after 1 and 31 years of history, hundreds of tickers (wall and
//!   peak memory) and the tuning guide's query on what they loaded;
//! - [`load`]: `mdp load` per strategy against `psql \copy` of the same rows.

mod backfill;
mod child;
mod figures;
mod load;
mod query;
mod runs;
mod series;

use std::path::PathBuf;

use mdp_core::StageError;
use serde_json::json;

use figures::{Figures, Goal};

/// How big the benchmark is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchMode {
    /// The sizes of the issue's goal table (500 tickers, 1M bars).
    Full,
    /// Small enough for CI (100 tickers, 250k bars); the ratios keep their meaning.
    Quick,
}

impl BenchMode {
    pub fn name(self) -> &'static str {
        match self {
            BenchMode::Full => "full",
            BenchMode::Quick => "quick",
        }
    }

    /// Tickers of the many-ticker run and of the load comparison.
    pub fn tickers(self) -> usize {
        match self {
            BenchMode::Full => ISSUE_TICKERS,
            BenchMode::Quick => 100,
        }
    }

    /// Closes the indicators are computed over.
    pub fn indicator_bars(self) -> usize {
        match self {
            BenchMode::Full => 1_000_000,
            BenchMode::Quick => 250_000,
        }
    }
}

/// The size of the issue's many-ticker figures: 500 tickers × 10 years.
const ISSUE_TICKERS: usize = 500;
const ISSUE_YEARS: u32 = 10;
/// Tickers of the issue's fresh-Postgres run.
const FRESH_TICKERS: usize = 7;
/// Years of history of the issue's one-new-day runs.
const SHORT_HISTORY_YEARS: u32 = 1;
const LONG_HISTORY_YEARS: u32 = 31;

pub struct BenchOptions {
    pub mode: BenchMode,
    /// Years of daily bars in the one-ticker backfill.
    pub years: u32,
    pub indicator_bars: usize,
    /// Postgres to load into (scratch schemas `mdp_bench`, `mdp_bench_run`
    /// and `mdp_bench_load` are recreated).
    pub postgres_url: String,
    /// Tickers of the many-ticker run and of the load comparison (0 skips both).
    pub tickers: usize,
    /// Years of daily rows per ticker in those two.
    pub ticker_years: u32,
    /// Where the figures go as JSON.
    pub json: Option<PathBuf>,
}

/// Runs every part, printing each as it finishes, then the goals and
/// ratios; writes the JSON when asked.
pub async fn run_bench(options: &BenchOptions) -> Result<(), StageError> {
    let url = &options.postgres_url;
    let load_before = mdp_devtools::load_average();
    let mut figures = Figures::default();
    let at_issue_size = options.tickers == ISSUE_TICKERS && options.ticker_years == ISSUE_YEARS;
    let issue_goal = |goal: Goal| at_issue_size.then_some(goal);

    print!(
        "{}",
        backfill::bench_one_ticker_backfill(options.years, url, &mut figures).await?
    );
    print!(
        "{}",
        backfill::bench_indicators(options.indicator_bars, &mut figures)
    );
    print!(
        "{}",
        runs::bench_fresh_backfill(
            FRESH_TICKERS,
            ISSUE_YEARS,
            url,
            Some(Goal::AtMost(0.15)),
            &mut figures
        )
        .await?
    );
    for (years, goal) in [
        (SHORT_HISTORY_YEARS, Some(Goal::AtMost(20.0))),
        (LONG_HISTORY_YEARS, None),
    ] {
        print!(
            "{}",
            runs::bench_one_new_day(years, url, goal, &mut figures).await?
        );
    }
    if options.tickers > 0 {
        let goals = runs::ManyTickersGoals {
            wall: issue_goal(Goal::AtMost(10.0)),
            peak_rss: issue_goal(Goal::AtMost(128.0)),
            query: issue_goal(Goal::Below(5.0)),
        };
        print!(
            "{}",
            runs::bench_many_tickers(
                options.tickers,
                options.ticker_years,
                url,
                goals,
                &mut figures
            )
            .await?
        );
        let load_options = load::LoadBenchOptions {
            tickers: options.tickers,
            years: options.ticker_years,
            postgres_url: url.clone(),
        };
        print!(
            "{}",
            load::run_load_bench(&load_options, &mut figures).await?
        );
    }
    add_ratios(&mut figures);
    print!("{}", figures.render_summary());

    if let Some(path) = &options.json {
        let sizes = json!({
            "backfill_years": options.years,
            "indicator_bars": options.indicator_bars,
            "tickers": options.tickers,
            "ticker_years": options.ticker_years,
            "fresh_tickers": FRESH_TICKERS,
            "history_years": [SHORT_HISTORY_YEARS, LONG_HISTORY_YEARS],
        });
        let mut doc = figures.to_json(options.mode.name(), sizes);
        doc["load_average"] = json!({"before": load_before, "after": mdp_devtools::load_average()});
        write_json(path, &doc)?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

/// The machine-independent ratios: each compares two timings of this run,
/// so a slower or faster machine moves both.
fn add_ratios(figures: &mut Figures) {
    for strategy in ["append", "upsert", "truncate_insert"] {
        figures.add_ratio(
            &format!("load.{strategy}_vs_psql_copy"),
            &format!("load.{strategy}"),
            "load.psql_copy",
            Some(Goal::AtMost(0.7)),
            format!("mdp load ({strategy}) / psql \\copy of the same rows"),
        );
    }
    figures.add_ratio(
        "one_new_day.31y_vs_1y",
        "one_new_day.31y.wall",
        "one_new_day.1y.wall",
        Some(Goal::AtMost(1.2)),
        "daily run with 31 years of history / with 1 year",
    );
    figures.add_ratio(
        "one_new_day_vs_backfill.31y",
        "one_new_day.31y.wall",
        "backfill_31y.wall",
        None,
        "daily run (one new session) / full backfill of the same 31 years: incremental vs full",
    );
    figures.add_ratio(
        "run_many_tickers_vs_psql_copy",
        "run_many_tickers.wall",
        "load.psql_copy",
        None,
        "mdp run of the many tickers (fetch, transform, load) / psql \\copy of the same rows",
    );
    figures.add_ratio(
        "indicators_vs_psql_copy",
        "indicators",
        "load.psql_copy",
        None,
        "indicators over the bars / psql \\copy of the load comparison's rows",
    );
}

fn write_json(path: &std::path::Path, doc: &serde_json::Value) -> Result<(), StageError> {
    let failed = |e: std::io::Error| {
        StageError::permanent(format!("writing the figures to {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let text = serde_json::to_string_pretty(doc).expect("figures serialise") + "\n";
    std::fs::write(path, text).map_err(failed)
}

/// This process's peak resident memory (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(child::vm_hwm_kb(&status)? as f64 / 1024.0)
}
