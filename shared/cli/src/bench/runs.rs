//! `mdp run` as a user runs it: this same binary in a child process, against
//! the local chart server (synthetic series) and Postgres, timed from spawn
//! to exit, with its peak resident memory. The child is `mdp run`, so the
//! figures include everything the command does (start, connect, migration
//! check, the four stages, exit).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chrono::NaiveDate;
use mdp_core::{Config, StageError};
use mdp_devtools::{ChartReplayServer, synthetic_bars, synthetic_daily_chart};
use mdp_pipeline::runner::TICKER_CONCURRENCY;
use serde_json::Value;

use super::child::run_child;
use super::figures::{Figures, Goal, Unit};
use super::query::bench_latest_rows_query;
use super::series::{
    SERIES_FIRST_DAY, SESSIONS_PER_YEAR, bench_ticker, first_session, without_pipeline_env,
};

/// The schema the runs load into (recreated by each scenario).
const SCHEMA: &str = "mdp_bench_run";

/// The last day of history of the one-new-day runs (a Friday); the new
/// sessions follow it, in the same year for every history length.
const HISTORY_LAST_DAY: NaiveDate = NaiveDate::from_ymd_opt(2025, 6, 13).expect("valid date");

/// New sessions served after the history: one timed run each, median kept.
const NEW_DAYS: usize = 5;

/// Backfills of the one-new-day history, median kept (a single one of
/// these sub-second runs varies too much for a ratio to rest on it).
const BACKFILL_RUNS: usize = 3;

/// The dates of one `mdp run`.
enum RunDates {
    /// `--start … --end …`: a backfill of exactly this range.
    Range(NaiveDate, NaiveDate),
    /// `--date …`: what is missing up to this day (the daily run).
    UpTo(NaiveDate),
}

/// One `mdp run`, timed.
struct TimedRun {
    wall: Duration,
    peak_rss_mb: f64,
    /// `mdp run --json`'s summary.
    summary: Value,
}

impl TimedRun {
    fn rows_fetched(&self) -> u64 {
        self.tickers()
            .filter_map(|t| t["rows_fetched"].as_u64())
            .sum()
    }

    fn tickers(&self) -> impl Iterator<Item = &Value> {
        self.summary["tickers"].as_array().into_iter().flatten()
    }

    /// Milliseconds of each stage, summed over the tickers.
    fn stages_ms(&self) -> [(&'static str, f64); 4] {
        let sum = |key: &str| -> f64 { self.tickers().filter_map(|t| t[key].as_f64()).sum() };
        [
            (
                "validate",
                self.summary["validate_ms"].as_f64().unwrap_or(0.0),
            ),
            ("fetch", sum("fetch_ms")),
            ("transform", sum("transform_ms")),
            ("load", sum("load_ms")),
        ]
    }
}

/// Where the runs of one scenario read and write: a fresh lake folder, the
/// chart server and the benchmark's Postgres schema.
struct RunTarget {
    lake_dir: PathBuf,
    chart_url: String,
    postgres_url: String,
}

impl RunTarget {
    fn new(scenario: &str, server: &ChartReplayServer, postgres_url: &str) -> RunTarget {
        let lake_dir =
            std::env::temp_dir().join(format!("mdp-bench-{scenario}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&lake_dir);
        RunTarget {
            lake_dir,
            chart_url: server.base_url(),
            postgres_url: postgres_url.to_string(),
        }
    }

    fn vars(&self) -> [(&'static str, String); 4] {
        [
            ("YAHOO_FINANCE_API_BASE_URL", self.chart_url.clone()),
            (
                "MARKET_DATA_LAKE_URI",
                format!("file://{}", self.lake_dir.display()),
            ),
            ("WAREHOUSE_URL", self.postgres_url.clone()),
            ("WAREHOUSE_SCHEMA", SCHEMA.to_string()),
        ]
    }

    /// Drops the table, and creates it again unless the run itself should
    /// (a fresh warehouse).
    async fn reset_warehouse(&self, create: bool) -> Result<(), StageError> {
        let vars = self.vars();
        let config =
            Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
                .map_err(|e| StageError::permanent(e.to_string()))?;
        let warehouse = mdp_warehouse::connect_rows(&config).await?;
        warehouse.drop_table().await?;
        if create {
            warehouse.migrate().await?;
        }
        warehouse.close().await;
        Ok(())
    }

    fn remove_lake(&self) {
        let _ = std::fs::remove_dir_all(&self.lake_dir);
    }

    /// `mdp run --json` of `tickers` for `dates`; every ticker must succeed.
    async fn mdp_run(&self, tickers: &[String], dates: RunDates) -> Result<TimedRun, StageError> {
        let exe = std::env::current_exe().map_err(|e| StageError::permanent(e.to_string()))?;
        let mut cmd = Command::new(exe);
        cmd.args(["run", "--json", "--tickers", &tickers.join(",")]);
        match dates {
            RunDates::Range(start, end) => {
                cmd.args(["--start", &start.to_string(), "--end", &end.to_string()])
            }
            RunDates::UpTo(date) => cmd.args(["--date", &date.to_string()]),
        };
        without_pipeline_env(&mut cmd)
            .envs(self.vars())
            .env("RUST_LOG", "warn");
        let what = format!("mdp run of {} tickers", tickers.len());
        let run = run_child(cmd, &what).await?;
        let summary: Value = serde_json::from_str(&run.stdout).map_err(|e| {
            StageError::permanent(format!("{what}: unreadable summary ({e}):\n{}", run.stdout))
        })?;
        Ok(TimedRun {
            wall: run.wall,
            peak_rss_mb: run.peak_rss_mb,
            summary,
        })
    }
}

/// Serves `symbol` as `sessions` synthetic bars from `first_day` (seed `seed`).
fn serve(
    server: &ChartReplayServer,
    symbol: &str,
    first_day: NaiveDate,
    sessions: usize,
    seed: u64,
) {
    let body = synthetic_daily_chart(symbol, first_day, sessions, seed);
    server
        .add_series(symbol, &body)
        .expect("a synthetic chart is JSON");
}

async fn start_chart_server() -> Result<ChartReplayServer, StageError> {
    ChartReplayServer::start()
        .await
        .map_err(|e| StageError::permanent(format!("starting the local chart server: {e}")))
}

fn last_session(first_day: NaiveDate, sessions: usize) -> NaiveDate {
    synthetic_bars(first_day, sessions, 0)
        .last()
        .map_or(first_day, |b| b.date)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// `tickers` tickers × `years` years of daily bars backfilled by one
/// `mdp run` into a fresh warehouse (the run creates the table); median of
/// three, each from an empty lake and no table.
pub async fn bench_fresh_backfill(
    tickers: usize,
    years: u32,
    postgres_url: &str,
    goal: Option<Goal>,
    figures: &mut Figures,
) -> Result<String, StageError> {
    let server = start_chart_server().await?;
    let sessions = years as usize * SESSIONS_PER_YEAR;
    let names: Vec<String> = (1..=tickers).map(|k| format!("FRESH{k}")).collect();
    for (k, name) in names.iter().enumerate() {
        serve(&server, name, SERIES_FIRST_DAY, sessions, 1000 + k as u64);
    }
    let last = last_session(SERIES_FIRST_DAY, sessions);
    let target = RunTarget::new("fresh", &server, postgres_url);
    let mut runs = Vec::new();
    for _ in 0..3 {
        target.remove_lake();
        target.reset_warehouse(false).await?;
        runs.push(
            target
                .mdp_run(&names, RunDates::Range(SERIES_FIRST_DAY, last))
                .await?,
        );
    }
    target.remove_lake();
    runs.sort_by_key(|r| r.wall);
    let run = &runs[1];
    let bars = run.rows_fetched();
    let name = format!("run_{tickers}_tickers_fresh");
    figures.add_with_goal(
        &format!("{name}.wall"),
        run.wall.as_secs_f64(),
        Unit::Seconds,
        goal,
        format!(
            "mdp run of {tickers} tickers × {years} years ({bars} bars) into a fresh Postgres (no table: the run creates it) and an empty lake; median of 3"
        ),
    );
    figures.add(
        &format!("{name}.peak_rss"),
        run.peak_rss_mb,
        Unit::Megabytes,
        "peak resident memory of that mdp run (VmHWM)",
    );
    Ok(format!(
        "mdp run: {tickers} tickers × {years} years ({bars} bars) into a fresh Postgres: {:.3} s (median of 3), peak {:.0} MB (goal ≤ 0.15 s)\n",
        run.wall.as_secs_f64(),
        run.peak_rss_mb
    ))
}

/// One ticker with `history_years` of history (backfilled by a timed
/// `mdp run --start … --end …`, the full computation of that history;
/// median of [`BACKFILL_RUNS`]), then
/// [`NEW_DAYS`] daily runs (`mdp run --date D`), each fetching one new
/// session; the median daily run is the figure.
pub async fn bench_one_new_day(
    history_years: u32,
    postgres_url: &str,
    goal: Option<Goal>,
    figures: &mut Figures,
) -> Result<String, StageError> {
    let server = start_chart_server().await?;
    let history = history_years as usize * SESSIONS_PER_YEAR;
    let first = first_session(HISTORY_LAST_DAY, history);
    let ticker = format!("DAY{history_years}Y");
    serve(
        &server,
        &ticker,
        first,
        history + NEW_DAYS,
        u64::from(history_years),
    );
    let new_days: Vec<NaiveDate> = synthetic_bars(first, history + NEW_DAYS, 0)[history..]
        .iter()
        .map(|b| b.date)
        .collect();

    let target = RunTarget::new(&format!("day{history_years}y"), &server, postgres_url);
    let tickers = [ticker.clone()];
    // Three backfills from nothing (the last one stays as the history).
    let mut backfills = Vec::with_capacity(BACKFILL_RUNS);
    for _ in 0..BACKFILL_RUNS {
        target.remove_lake();
        target.reset_warehouse(true).await?;
        backfills.push(
            target
                .mdp_run(&tickers, RunDates::Range(first, HISTORY_LAST_DAY))
                .await?,
        );
    }
    let backfill_wall = median(backfills.iter().map(|r| r.wall).collect());
    let backfill_bars = backfills[0].rows_fetched();
    let mut days = Vec::with_capacity(NEW_DAYS);
    for day in &new_days {
        let run = target.mdp_run(&tickers, RunDates::UpTo(*day)).await?;
        if run.rows_fetched() != 1 {
            target.remove_lake();
            return Err(StageError::permanent(format!(
                "the daily run for {day} fetched {} bars, not the one new session:\n{}",
                run.rows_fetched(),
                run.summary
            )));
        }
        days.push(run);
    }
    target.remove_lake();
    let wall = median(days.iter().map(|r| r.wall).collect());
    let typical = days
        .iter()
        .find(|r| r.wall == wall)
        .expect("the median is one of the runs");

    let y = history_years;
    figures.add(
        &format!("backfill_{y}y.wall"),
        backfill_wall.as_secs_f64(),
        Unit::Seconds,
        format!(
            "mdp run --start --end of one ticker's {y} years ({backfill_bars} bars) into an empty lake and table: the full computation of the history; median of {BACKFILL_RUNS}"
        ),
    );
    figures.add_with_goal(
        &format!("one_new_day.{y}y.wall"),
        wall.as_secs_f64() * 1000.0,
        Unit::Milliseconds,
        goal,
        format!(
            "mdp run --date D of one ticker with {y} years ({history} sessions) of history, one new session; median of {NEW_DAYS} consecutive days"
        ),
    );
    figures.add(
        &format!("one_new_day.{y}y.peak_rss"),
        typical.peak_rss_mb,
        Unit::Megabytes,
        "peak resident memory of that daily mdp run (VmHWM)",
    );
    let mut report = format!(
        "mdp run, one new day with {y} years of history: {:.1} ms (median of {NEW_DAYS}; backfill of the history {:.3} s, median of {BACKFILL_RUNS})\n",
        wall.as_secs_f64() * 1000.0,
        backfill_wall.as_secs_f64()
    );
    let mut staged = 0.0;
    for (stage, ms) in typical.stages_ms() {
        staged += ms;
        report.push_str(&format!("  {stage:<28} {ms:>7.1} ms\n"));
    }
    report.push_str(&format!(
        "  {:<28} {:>7.1} ms\n",
        "rest (start, connect, exit)",
        wall.as_secs_f64() * 1000.0 - staged
    ));
    Ok(report)
}

/// `tickers` × `years` of daily bars backfilled by one `mdp run` into an
/// empty table (created before the clock): the tickers and dates of the
/// load comparison, so psql's copy of its CSV is the same rows. Then the
/// tuning guide's query on the table it filled, which is dropped after.
pub async fn bench_many_tickers(
    tickers: usize,
    years: u32,
    postgres_url: &str,
    goals: ManyTickersGoals,
    figures: &mut Figures,
) -> Result<String, StageError> {
    let server = start_chart_server().await?;
    let sessions = years as usize * SESSIONS_PER_YEAR;
    let names: Vec<String> = (0..tickers).map(bench_ticker).collect();
    for (k, name) in names.iter().enumerate() {
        serve(&server, name, SERIES_FIRST_DAY, sessions, k as u64);
    }
    let last = last_session(SERIES_FIRST_DAY, sessions);
    let target = RunTarget::new("many", &server, postgres_url);
    target.reset_warehouse(true).await?;
    let run = target
        .mdp_run(&names, RunDates::Range(SERIES_FIRST_DAY, last))
        .await?;
    target.remove_lake();
    let rows = run.rows_fetched();
    figures.add_with_goal(
        "run_many_tickers.wall",
        run.wall.as_secs_f64(),
        Unit::Seconds,
        goals.wall,
        format!(
            "mdp run of {tickers} tickers × {years} years ({rows} bars) into an empty Postgres table and an empty lake"
        ),
    );
    figures.add_with_goal(
        "run_many_tickers.peak_rss",
        run.peak_rss_mb,
        Unit::Megabytes,
        goals.peak_rss,
        "peak resident memory of that mdp run (VmHWM)",
    );
    let mut report = format!(
        "mdp run: {tickers} tickers × {years} years ({rows} bars) into Postgres: {:.2} s, peak {:.0} MB (goal ≤ 10 s, ≤ 128 MB for 500 tickers)\n",
        run.wall.as_secs_f64(),
        run.peak_rss_mb
    );
    for (stage, ms) in run.stages_ms() {
        report.push_str(&format!(
            "  {stage:<28} {:>7.2} s (summed over tickers, {TICKER_CONCURRENCY} at a time)\n",
            ms / 1000.0
        ));
    }
    report.push_str(
        &bench_latest_rows_query(postgres_url, SCHEMA, rows, goals.query, figures).await?,
    );
    target.reset_warehouse(false).await?;
    Ok(report)
}

/// The goals of [`bench_many_tickers`]'s figures (at the size only).
pub struct ManyTickersGoals {
    pub wall: Option<Goal>,
    pub peak_rss: Option<Goal>,
    pub query: Option<Goal>,
}
