//! Drives the four stages in one process. Each ticker runs fetch → transform
//! → load as its own task, up to [`TICKER_CONCURRENCY`] at a time, so the
//! tickers in flight use every core; one ticker's failure never stops the
//! others.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use chrono::NaiveDate;
use mdp_chart::{ChartClient, ChartClientSettings, fetch_stage};
use mdp_core::config::{LakeUri, LoadStrategy, ParquetCompression};
use mdp_core::lake::StageOutcome;
use mdp_core::messages::{FetchRequest, ScheduleEvent, new_run_id, run_started_at};
use mdp_core::source::MarketDataSource;
use mdp_core::validate::{ValidateError, validate_stage};
use mdp_core::{Config, Lake, LocalStore, StageError, Ticker};
use mdp_transform::{lake_now, transform_stage};
use mdp_warehouse::{LoadReport, WarehouseLoader, load_stage, reload_ticker};
use tokio::sync::Semaphore;

use crate::summary::{RunSummary, TickerOutcome, TickerSummary};

/// Tickers processed at the same time. The chart client separately keeps
/// its requests to MARKET_DATA_API_CONCURRENCY (5, the original's API pool)
/// and the warehouse pool its connections to WAREHOUSE_POOL_SIZE; more
/// tickers than either in flight let one ticker's parsing, indicators and
/// fsyncs overlap another's requests and COPY (`make bench`: 500 tickers).
pub const TICKER_CONCURRENCY: usize = 12;

/// Everything a run needs, built once.
pub struct Pipeline {
    pub config: Config,
    pub lake: Lake,
    pub source: Arc<dyn MarketDataSource>,
    pub warehouse: Arc<dyn WarehouseLoader>,
    /// Told of each finished ticker (`mdp run` shows progress with it).
    pub progress: Option<ProgressCallback>,
}

/// What `mdp run` passes to be told of each finished ticker.
pub type ProgressCallback = Arc<dyn Fn(Progress<'_>) + Send + Sync>;

/// One ticker finished, out of `total` in the run.
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub ticker: &'a TickerSummary,
}

/// The lake the configuration names: a local folder, or S3 (with the AWS
/// configuration from the environment, `AWS_ENDPOINT_URL` included).
pub async fn open_lake(config: &Config) -> Lake {
    match &config.lake_uri {
        LakeUri::File(path) => Lake::new(Arc::new(LocalStore::new(path))),
        LakeUri::S3 { .. } => mdp_aws::open_lake(config, &mdp_aws::load_sdk_config().await),
    }
}

impl Pipeline {
    /// Builds the lake, the chart client and the warehouse (creating the
    /// table if it is missing) from the configuration.
    pub async fn from_config(config: Config) -> Result<Pipeline, StageError> {
        let lake = open_lake(&config).await;
        let source = Arc::new(ChartClient::new(ChartClientSettings::from(&config))?);
        let warehouse = mdp_warehouse::connect(&config).await?;
        warehouse.migrate().await?;
        Ok(Pipeline {
            config,
            lake,
            source,
            warehouse,
            progress: None,
        })
    }

    /// One run: plan, then fetch → transform → load each ticker.
    /// Fails only for a request that plans nothing (dates out of range,
    /// start after end, no valid ticker): `mdp` calls that a usage error.
    pub async fn run(
        &self,
        event: &ScheduleEvent,
        today: NaiveDate,
    ) -> Result<RunSummary, ValidateError> {
        let run_id = new_run_id();
        let started = Instant::now();
        let plan = validate_stage(&self.lake, &self.config, event, today, &run_id).await?;
        let validate_time = started.elapsed();

        // First what earlier runs left unloaded (a load that failed or was
        // killed): loads read the lake as it is, so order does not matter.
        let mut caught_up: HashMap<String, Result<(LoadReport, Duration), StageError>> =
            HashMap::new();
        let stages = self.stages();
        for request in &plan.catch_up {
            let clock = Instant::now();
            let result = isolated(
                &request.ticker,
                stages.recorded(
                    (&request.ticker, &request.run_id),
                    "load",
                    load_stage(
                        &self.lake,
                        self.warehouse.as_ref(),
                        request,
                        self.config.load_strategy,
                    ),
                ),
            )
            .await
            .map(|report| (report, clock.elapsed()));
            caught_up.insert(request.ticker.to_string(), result);
        }

        let limit = Arc::new(Semaphore::new(TICKER_CONCURRENCY));
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let total = plan.fetches.len();
        let runs = plan.fetches.iter().map(|request| {
            let limit = limit.clone();
            let finished = &finished;
            let stages = self.stages();
            let request = request.clone();
            async move {
                let _permit = limit.acquire().await.expect("semaphore is never closed");
                // A task per ticker: parsing, indicators and Parquet encoding
                // of the tickers in flight run on every core.
                let ticker = request.ticker.clone();
                let summary = tokio::spawn(async move { stages.run_ticker(&request).await })
                    .await
                    .unwrap_or_else(|e| {
                        let mut s = TickerSummary::new(ticker.as_str());
                        s.outcome = TickerOutcome::Failed(StageError::permanent(format!(
                            "{ticker}: internal error ({e})"
                        )));
                        s
                    });
                if let Some(progress) = &self.progress {
                    let done = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress(Progress {
                        done,
                        total,
                        ticker: &summary,
                    });
                }
                summary
            }
        });
        let mut tickers: Vec<TickerSummary> = futures::future::join_all(runs).await;
        for t in &plan.up_to_date {
            let mut s = TickerSummary::new(t.as_str());
            s.outcome = TickerOutcome::UpToDate;
            tickers.push(s);
        }
        for (t, e) in plan.failed {
            let mut s = TickerSummary::new(t.as_str());
            s.outcome = TickerOutcome::Failed(e);
            tickers.push(s);
        }
        for s in &mut tickers {
            match caught_up.remove(&s.ticker) {
                Some(Ok((report, took))) => {
                    s.rows_loaded += report.rows_loaded();
                    s.load_time += took;
                    if matches!(s.outcome, TickerOutcome::UpToDate) {
                        s.outcome = TickerOutcome::CaughtUp;
                    }
                }
                Some(Err(e)) => s.outcome = TickerOutcome::Failed(e),
                None => {}
            }
        }
        Ok(RunSummary {
            run_id,
            validate_time,
            tickers,
            rejected: plan.rejected,
        })
    }

    /// What one ticker's work needs, owned, so it can run as its own task.
    fn stages(&self) -> Stages {
        Stages {
            lake: self.lake.clone(),
            source: self.source.clone(),
            warehouse: self.warehouse.clone(),
            compression: self.config.parquet_compression,
            strategy: self.config.load_strategy,
        }
    }

    /// `mdp load`: reloads the warehouse from the curated lake, for the named
    /// tickers or every ticker the lake holds.
    pub async fn reload(
        &self,
        tickers: Option<Vec<Ticker>>,
    ) -> Result<Vec<(Ticker, Result<LoadReport, StageError>)>, StageError> {
        let tickers = match tickers {
            Some(t) => t,
            None => self.lake.curated_tickers().await?,
        };
        // Several tickers at a time, each its own task: one ticker's decoding
        // overlaps another's COPY, and both cores decode.
        let limit = Arc::new(Semaphore::new(TICKER_CONCURRENCY));
        let loads = tickers.into_iter().map(|ticker| {
            let limit = limit.clone();
            let stages = self.stages();
            async move {
                let _permit = limit.acquire().await.expect("semaphore is never closed");
                let task_ticker = ticker.clone();
                let result = tokio::spawn(async move {
                    isolated(
                        &task_ticker,
                        reload_ticker(
                            &stages.lake,
                            stages.warehouse.as_ref(),
                            &task_ticker,
                            stages.strategy,
                        ),
                    )
                    .await
                })
                .await
                .unwrap_or_else(|e| {
                    Err(StageError::permanent(format!(
                        "{ticker}: internal error ({e})"
                    )))
                });
                (ticker, result)
            }
        });
        Ok(futures::future::join_all(loads).await)
    }
}

/// The stages of one ticker, with what they need.
#[derive(Clone)]
struct Stages {
    lake: Lake,
    source: Arc<dyn MarketDataSource>,
    warehouse: Arc<dyn WarehouseLoader>,
    compression: ParquetCompression,
    strategy: LoadStrategy,
}

impl Stages {
    async fn run_ticker(&self, request: &FetchRequest) -> TickerSummary {
        let mut s = TickerSummary::new(request.ticker.as_str());
        s.range = Some((request.start, request.end));
        let result = isolated(&request.ticker, self.run_ticker_stages(request, &mut s)).await;
        if let Err(e) = result {
            tracing::error!(ticker = %request.ticker, class = %e.class, "{}", e.message());
            s.outcome = TickerOutcome::Failed(e);
        }
        s
    }

    async fn run_ticker_stages(
        &self,
        request: &FetchRequest,
        s: &mut TickerSummary,
    ) -> Result<(), StageError> {
        let clock = Instant::now();
        let fetched = self
            .recorded(
                (&request.ticker, &request.run_id),
                "fetch",
                fetch_stage(self.source.as_ref(), &self.lake, request),
            )
            .await?;
        s.fetch_time = clock.elapsed();
        s.rows_fetched = fetched.bars_in_range;
        let Some(transform_request) = fetched.next else {
            return Ok(());
        };

        let clock = Instant::now();
        // The run's start stamps new rows, as in the transform function.
        let now = run_started_at(&transform_request.run_id).unwrap_or_else(lake_now);
        let transformed = self
            .recorded(
                (&request.ticker, &request.run_id),
                "transform",
                transform_stage(&self.lake, &transform_request, self.compression, now),
            )
            .await?;
        s.transform_time = clock.elapsed();
        s.rows_written = transformed.rows_written;
        s.bars_quarantined = transformed.bars_quarantined;
        let Some(load_request) = transformed.next else {
            return Ok(());
        };

        let clock = Instant::now();
        let loaded = self
            .recorded(
                (&request.ticker, &request.run_id),
                "load",
                load_stage(
                    &self.lake,
                    self.warehouse.as_ref(),
                    &load_request,
                    self.strategy,
                ),
            )
            .await?;
        s.load_time = clock.elapsed();
        s.rows_loaded = loaded.rows_loaded();
        tracing::info!(
            ticker = %request.ticker,
            fetched = s.rows_fetched,
            written = s.rows_written,
            loaded = s.rows_loaded,
            "ticker done"
        );
        Ok(())
    }

    /// Runs a stage and records its outcome in the ticker's run ledger (a
    /// ledger that cannot be written is logged, never fails the stage).
    async fn recorded<T, E: Into<StageError>>(
        &self,
        (ticker, run_id): (&Ticker, &str),
        stage: &str,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, StageError> {
        let result = work.await.map_err(Into::into);
        let (outcome, detail) = match &result {
            Ok(_) => (StageOutcome::Ok, None),
            Err(e) => (StageOutcome::Failed, Some(e.message())),
        };
        if let Err(e) = self
            .lake
            .record_stage(ticker, run_id, stage, outcome, detail)
            .await
        {
            tracing::warn!(%ticker, error = %mdp_core::error::chain(&e), "run ledger not written");
        }
        result
    }
}

/// Runs one ticker's work so that a panic inside it fails that ticker only
/// (a bug hit by one ticker's data must not stop the others).
async fn isolated<T>(
    ticker: &Ticker,
    work: impl Future<Output = Result<T, StageError>>,
) -> Result<T, StageError> {
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            tracing::error!(%ticker, panic = %what, "the ticker's work panicked");
            Err(StageError::permanent(format!(
                "{ticker}: internal error (panic: {what}); the other tickers were not affected"
            )))
        }
    }
}
