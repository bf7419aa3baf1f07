//! The `mdp` command (DESIGN.md section 9): `run`, `load` and `warehouse
//! migrate` drive the one-process pipeline (mdp-pipeline); `demo`,
//! `serve-charts` and `bench` use the development machinery (mdp-devtools);
//! `report` writes the offline HTML report (mdp-report).

mod bench;
mod demo;
mod dlq;
mod report;

use std::process::ExitCode;

use bench::{BenchMode, BenchOptions, run_bench};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use demo::run_demo;
use mdp_core::config::parse_ticker_list;
use mdp_core::dates::today_in_new_york;
use mdp_core::messages::ScheduleEvent;
use mdp_core::{Config, StageError};
use mdp_pipeline::Pipeline;

/// The Postgres `mdp bench` loads into when neither `--postgres-url` nor
/// `MDP_BENCH_POSTGRES_URL` says otherwise: the local test database.
const DEFAULT_BENCH_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Parser)]
#[command(
    name = "mdp",
    about = "Market data pipeline: Yahoo chart API → Parquet lake → SQL warehouse",
    after_help = "Configuration comes from environment variables: MARKET_DATA_LAKE_URI,\n\
                  WAREHOUSE_URL, YAHOO_FINANCE_API_BASE_URL and the others README.md\n\
                  lists under Configuration.",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run validate → fetch → transform → load for the tickers.
    Run {
        /// Comma-separated tickers (default: MARKET_DATA_DEFAULT_TICKERS, else AAPL).
        #[arg(long)]
        tickers: Option<String>,
        /// Target date: fetch what is missing up to it (default: today in New York).
        #[arg(long, conflicts_with_all = ["start", "end"])]
        date: Option<NaiveDate>,
        /// First date of an explicit range (inclusive).
        #[arg(long, requires = "end")]
        start: Option<NaiveDate>,
        /// Last date of an explicit range (inclusive).
        #[arg(long, requires = "start")]
        end: Option<NaiveDate>,
        /// Print the summary as JSON (for orchestrators) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Is every ticker up to date, and if not, what failed?
    ///
    /// Per ticker: last bar, lag in trading sessions, the last run's stages,
    /// the warehouse; the dead-letter queues' depths when their URLs are set.
    /// Exits 1 when any ticker is stale or failed.
    Status {
        /// Comma-separated tickers (default: the default tickers and every ticker in the lake).
        #[arg(long)]
        tickers: Option<String>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Hours after the close a day's data is expected (the schedule runs 2 h after).
        #[arg(long, default_value_t = 2)]
        grace_hours: i64,
        /// The time to judge freshness at (RFC 3339; default now).
        #[arg(long, hide = true)]
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The same pipeline offline, on bundled recorded responses.
    Demo,
    /// (Re)load the warehouse from the curated lake.
    Load {
        /// Comma-separated tickers (default: every ticker in the lake).
        #[arg(long)]
        tickers: Option<String>,
    },
    /// Write the offline HTML report: index.html and a page per ticker
    /// (charts, indicators, corporate actions, data quality).
    ///
    /// Prints the index's path (or s3:// URI); open it in a browser, no
    /// server needed.
    Report {
        /// Comma-separated tickers (default: every ticker with curated data).
        #[arg(long)]
        tickers: Option<String>,
        /// Where to write it: a folder, file://PATH or s3://BUCKET/PREFIX
        /// (default: reports/ in the lake, ./data/reports with the default lake).
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        out: Option<String>,
    },
    /// Warehouse administration.
    Warehouse {
        #[command(subcommand)]
        action: WarehouseAction,
    },
    /// Lake state administration.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
    /// Lake administration.
    Lake {
        #[command(subcommand)]
        action: LakeAction,
    },
    /// Dead-letter queues: what is in a stage's and why; move it back.
    Dlq {
        #[command(subcommand)]
        action: dlq::DlqAction,
    },
    /// Serve the bundled recordings as a local chart API (for `make invoke`).
    #[command(hide = true)]
    ServeCharts {
        /// Loopback port to listen on.
        #[arg(long, default_value_t = 9876)]
        port: u16,
        /// Also serve SYNTH: this many years of synthetic daily bars ending today.
        #[arg(long, default_value_t = 20)]
        synthetic_years: u32,
    },
    /// Measure the pipeline against the local chart server and Postgres (`make bench`).
    #[command(hide = true)]
    Bench {
        /// CI size: 100 tickers and 250,000 bars unless given (`make bench-check`).
        #[arg(long)]
        quick: bool,
        /// Write every figure and ratio as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<std::path::PathBuf>,
        /// Years of daily bars in the one-ticker backfill.
        #[arg(long, default_value_t = 10)]
        years: u32,
        /// Closes the indicators are computed over (default 1,000,000; 250,000 with --quick).
        #[arg(long)]
        bars: Option<usize>,
        /// Postgres to load into (scratch schemas mdp_bench, mdp_bench_run and mdp_bench_load are recreated).
        #[arg(
            long,
            env = "MDP_BENCH_POSTGRES_URL",
            hide_env_values = true, // it may hold a password
            default_value = DEFAULT_BENCH_POSTGRES_URL
        )]
        postgres_url: String,
        /// Tickers of the many-ticker run and the warehouse load comparison
        /// (default 500; 100 with --quick; 0 skips both).
        #[arg(long, alias = "load-tickers")]
        tickers: Option<usize>,
        /// Years of daily rows per ticker in those two.
        #[arg(long, alias = "load-years", default_value_t = 10)]
        ticker_years: u32,
    },
}

#[derive(Subcommand)]
enum WarehouseAction {
    /// Create or upgrade the warehouse schema.
    Migrate,
}

#[derive(Subcommand)]
enum LakeAction {
    /// Rewrite curated files of the earlier layout (with a ticker column)
    /// in the current one; values unchanged, idempotent.
    Migrate {
        /// Comma-separated tickers (default: every ticker in the lake).
        #[arg(long)]
        tickers: Option<String>,
    },
}

#[derive(Subcommand)]
enum StateAction {
    /// Rebuild each ticker's watermark from its curated partitions, moving
    /// unreadable partitions to quarantine/ (the way back from corrupt state).
    Rebuild {
        /// Comma-separated tickers.
        #[arg(long)]
        tickers: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    mdp_core::logging::init_logging(false);
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mdp: {e}");
            return ExitCode::from(2);
        }
    };
    match execute(cli.command, config).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mdp: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Progress on stderr: one line rewritten in place on a terminal, a plain
/// line per finished ticker otherwise (a log file, CI).
fn progress_printer() -> mdp_pipeline::runner::ProgressCallback {
    use std::io::{IsTerminal, Write};
    let terminal = std::io::stderr().is_terminal();
    std::sync::Arc::new(move |p: mdp_pipeline::runner::Progress<'_>| {
        let status = match &p.ticker.outcome {
            mdp_pipeline::TickerOutcome::Failed(_) => "FAILED",
            _ => "ok",
        };
        let line = format!(
            "[{}/{}] {} {status} ({} rows loaded)",
            p.done, p.total, p.ticker.ticker, p.ticker.rows_loaded
        );
        let mut err = std::io::stderr().lock();
        let _ = if terminal {
            let end = if p.done == p.total { "\n" } else { "" };
            write!(err, "\r\x1b[2K{line}{end}")
        } else {
            writeln!(err, "{line}")
        };
    })
}

/// The depth of each stage's dead-letter queue whose URL is configured
/// (none on one machine without queues).
async fn dead_letter_depths(config: &Config) -> Vec<(&'static str, Result<u64, String>)> {
    let queues = [
        ("fetch", &config.fetch_dlq_url),
        ("transform", &config.transform_dlq_url),
        ("load", &config.load_dlq_url),
    ];
    if queues.iter().all(|(_, url)| url.is_none()) {
        return Vec::new();
    }
    let client = mdp_aws::sqs_client(&mdp_aws::load_sdk_config().await);
    let mut out = Vec::new();
    for (stage, url) in queues {
        if let Some(url) = url {
            let depth = mdp_aws::dlq::approximate_count(&client, url)
                .await
                .map_err(|e| e.message());
            out.push((stage, depth));
        }
    }
    out
}

/// Prints a usage error (one line) and gives the exit status 2.
fn usage(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("mdp: {error}");
    ExitCode::from(2)
}

/// The checks validate makes of a whole request, made before connecting.
fn check_request(
    event: &ScheduleEvent,
    today: NaiveDate,
) -> Result<(), mdp_core::validate::ValidateError> {
    mdp_core::dates::DateRequest::from_parts(event.date, event.start, event.end, today)?;
    if let Some(list) = &event.tickers {
        let (valid, rejected) = mdp_core::ticker::normalise_tickers(list);
        if valid.is_empty() {
            return Err(mdp_core::validate::ValidateError::NoTicker(rejected));
        }
    }
    Ok(())
}

fn ticker_list(raw: Option<String>) -> Result<Option<Vec<String>>, StageError> {
    Ok(raw.map(|s| {
        s.split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    }))
}

async fn execute(command: Command, config: Config) -> Result<ExitCode, StageError> {
    match command {
        Command::Run {
            tickers,
            date,
            start,
            end,
            json,
        } => {
            let event = ScheduleEvent {
                tickers: ticker_list(tickers)?,
                date,
                start,
                end,
            };
            // A request that plans nothing is a usage error, found before
            // anything is connected.
            let today = today_in_new_york();
            if let Err(e) = check_request(&event, today) {
                return Ok(usage(e));
            }
            let mut pipeline = Pipeline::from_config(config).await?;
            pipeline.progress = Some(progress_printer());
            let summary = match pipeline.run(&event, today).await {
                Ok(summary) => summary,
                Err(e) => return Ok(usage(e)),
            };
            pipeline.warehouse.close().await;
            if json {
                println!("{}", summary.to_json());
            } else {
                print!("{}", summary.render());
            }
            Ok(if summary.all_succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Demo => {
            let (summary, config) = run_demo(config).await?;
            print!("{}", summary.render());
            println!("lake:      {}", config.lake_uri);
            println!(
                "warehouse: {} (table {})",
                config.warehouse.redacted(),
                config.warehouse_table
            );
            let written =
                report::run_report(&config, None, &report::ReportTarget::in_lake(&config)).await?;
            println!("report:    {} (open it in a browser)", written.index);
            for problem in &written.problems {
                eprintln!("mdp: report: {problem}");
            }
            Ok(if summary.all_succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Load { tickers } => {
            let tickers = match tickers {
                Some(raw) => match parse_ticker_list(&raw) {
                    Ok(list) => Some(list),
                    Err(e) => return Ok(usage(format!("--tickers {raw:?}: {e}"))),
                },
                None => None,
            };
            let pipeline = Pipeline::from_config(config).await?;
            let results = pipeline.reload(tickers).await?;
            pipeline.warehouse.close().await;
            let mut failed = false;
            for (ticker, result) in &results {
                match result {
                    Ok(r) => println!(
                        "{ticker:<12} loaded {:>7} rows (inserted {}, updated {}, deleted {})",
                        r.rows_in, r.inserted, r.updated, r.deleted
                    ),
                    Err(e) => {
                        failed = true;
                        println!("{ticker:<12} FAILED: {e}");
                    }
                }
            }
            if let Some(peak) = bench::peak_rss_mb() {
                println!("peak memory {peak:.1} MB");
            }
            if results.is_empty() {
                println!(
                    "the lake {} holds no curated partitions",
                    pipeline.lake.uri()
                );
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::State {
            action: StateAction::Rebuild { tickers },
        } => {
            let tickers = match parse_ticker_list(&tickers) {
                Ok(list) => list,
                Err(e) => return Ok(usage(format!("--tickers {tickers:?}: {e}"))),
            };
            let lake = mdp_pipeline::runner::open_lake(&config).await;
            let mut failed = false;
            for ticker in tickers {
                match mdp_transform::rebuild_state(&lake, &ticker, mdp_transform::lake_now()).await
                {
                    Ok(report) => {
                        let last = report
                            .last_date
                            .map_or("none (the next run backfills)".to_string(), |d| {
                                d.to_string()
                            });
                        println!(
                            "{ticker:<12} watermark rebuilt: {} rows, last date {last}",
                            report.rows
                        );
                        for (key, why) in &report.quarantined {
                            println!("{ticker:<12} quarantined {key}: {why}");
                        }
                        for command in report.refetch_commands(&ticker) {
                            println!("{ticker:<12} fetch it again with: {command}");
                        }
                    }
                    Err(e) => {
                        failed = true;
                        println!("{ticker:<12} FAILED: {e}");
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Status {
            tickers,
            json,
            grace_hours,
            now,
        } => {
            let lake = mdp_pipeline::runner::open_lake(&config).await;
            let tickers = match tickers {
                Some(raw) => match parse_ticker_list(&raw) {
                    Ok(list) => list,
                    Err(e) => return Ok(usage(format!("--tickers {raw:?}: {e}"))),
                },
                None => {
                    let mut all = config.default_tickers.clone();
                    for t in lake.curated_tickers().await? {
                        if !all.contains(&t) {
                            all.push(t);
                        }
                    }
                    all
                }
            };
            // Redshift does not give rows back: its columns stay empty.
            let warehouse = mdp_warehouse::connect_rows(&config).await.ok();
            let statuses = mdp_pipeline::status::ticker_statuses(
                &lake,
                warehouse.as_deref(),
                &tickers,
                now.unwrap_or_else(chrono::Utc::now),
                chrono::TimeDelta::hours(grace_hours),
            )
            .await;
            if let Some(w) = &warehouse {
                w.close().await;
            }
            let healthy = statuses
                .iter()
                .all(|s| s.status == mdp_pipeline::status::Freshness::UpToDate);
            let dead_letters = dead_letter_depths(&config).await;
            let dlq_empty = dead_letters.iter().all(|(_, depth)| matches!(depth, Ok(0)));
            if json {
                let dlqs: serde_json::Map<String, serde_json::Value> = dead_letters
                    .iter()
                    .map(|(stage, depth)| {
                        let value = match depth {
                            Ok(n) => serde_json::json!(n),
                            Err(e) => serde_json::json!({ "error": e }),
                        };
                        (stage.to_string(), value)
                    })
                    .collect();
                let report = serde_json::json!({ "tickers": statuses, "dead_letter_queues": dlqs });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("status serialises")
                );
            } else {
                print!("{}", mdp_pipeline::status::render(&statuses));
                for (stage, depth) in &dead_letters {
                    match depth {
                        Ok(n) => println!("dead-letter queue {stage}: {n} messages"),
                        Err(e) => println!("dead-letter queue {stage}: unknown ({e})"),
                    }
                }
            }
            Ok(if healthy && dlq_empty {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Lake {
            action: LakeAction::Migrate { tickers },
        } => {
            let lake = mdp_pipeline::runner::open_lake(&config).await;
            let tickers = match tickers {
                Some(raw) => match parse_ticker_list(&raw) {
                    Ok(list) => list,
                    Err(e) => return Ok(usage(format!("--tickers {raw:?}: {e}"))),
                },
                None => lake.curated_tickers().await?,
            };
            let mut failed = false;
            for ticker in tickers {
                match mdp_lake::migrate_layout(&lake, &ticker, config.parquet_compression).await {
                    Ok(report) => println!(
                        "{ticker:<12} rewrote {} partitions, {} already in the current layout",
                        report.rewritten.len(),
                        report.unchanged
                    ),
                    Err(e) => {
                        failed = true;
                        println!("{ticker:<12} FAILED: {e}");
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Report { tickers, out } => {
            let tickers = match tickers {
                Some(raw) => match parse_ticker_list(&raw) {
                    Ok(list) => Some(list),
                    Err(e) => return Ok(usage(format!("--tickers {raw:?}: {e}"))),
                },
                None => None,
            };
            let target = match out.as_deref().map(report::ReportTarget::parse) {
                None => report::ReportTarget::in_lake(&config),
                Some(Ok(target)) => target,
                Some(Err(e)) => {
                    return Ok(usage(format!("--out {:?}: {e}", out.unwrap_or_default())));
                }
            };
            let written = report::run_report(&config, tickers, &target).await?;
            for problem in &written.problems {
                eprintln!("mdp: report: {problem}");
            }
            eprintln!("report of {} tickers written", written.tickers);
            println!("{}", written.index);
            Ok(if written.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Dlq { action } => dlq::run_dlq(action, &config).await,
        Command::Warehouse {
            action: WarehouseAction::Migrate,
        } => {
            let warehouse = mdp_warehouse::connect(&config).await?;
            warehouse.migrate().await?;
            println!("{} is up to date", warehouse.describe());
            warehouse.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::ServeCharts {
            port,
            synthetic_years,
        } => {
            let server = mdp_devtools::ChartReplayServer::start_on(port)
                .await
                .map_err(|e| {
                    StageError::permanent(format!("listening on 127.0.0.1:{port}: {e}"))
                })?;
            for (symbol, body) in demo::SERVE_SERIES {
                server
                    .add_series(symbol, body)
                    .map_err(|e| StageError::permanent(format!("{symbol}: {e}")))?;
            }
            let sessions = synthetic_years as usize * 252;
            let first_day =
                today_in_new_york() - chrono::Days::new(u64::from(synthetic_years) * 365);
            let synth = mdp_devtools::synthetic_daily_chart("SYNTH", first_day, sessions, 20);
            server
                .add_series("SYNTH", &synth)
                .map_err(|e| StageError::permanent(e.to_string()))?;
            println!("YAHOO_FINANCE_API_BASE_URL={}", server.base_url());
            println!(
                "serving MSFT, NVDA, AAPL (2025), BTC-USD and SYNTH ({sessions} sessions from {first_day}); Ctrl-C stops"
            );
            // Serves until the process is interrupted or killed.
            std::future::pending::<()>().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            quick,
            json,
            years,
            bars,
            postgres_url,
            tickers,
            ticker_years,
        } => {
            let mode = if quick {
                BenchMode::Quick
            } else {
                BenchMode::Full
            };
            run_bench(&BenchOptions {
                mode,
                years,
                indicator_bars: bars.unwrap_or(mode.indicator_bars()),
                postgres_url,
                tickers: tickers.unwrap_or(mode.tickers()),
                ticker_years,
                json,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
