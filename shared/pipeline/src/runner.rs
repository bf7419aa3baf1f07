//! Drives the four stages in one process. Each ticker runs fetch → transform
//! → load on its own, up to five at a time (the original's API pool size);
//! one ticker's failure never stops the others.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mdp_chart::{ChartClient, ChartClientSettings, fetch_stage};
use mdp_core::config::LakeUri;
use mdp_core::messages::{FetchRequest, ScheduleEvent, new_run_id, run_started_at};
use mdp_core::source::MarketDataSource;
use mdp_core::ticker::TickerError;
use mdp_core::validate::validate_stage;
use mdp_core::{Config, Lake, LocalStore, StageError, Ticker};
use mdp_transform::{lake_now, transform_stage};
use mdp_warehouse::{LoadReport, WarehouseLoader, load_stage, reload_ticker};
use tokio::sync::Semaphore;

/// Tickers processed at the same time.
pub const TICKER_CONCURRENCY: usize = 5;

/// Everything a run needs, built once.
pub struct Pipeline {
    pub config: Config,
    pub lake: Lake,
    pub source: Arc<dyn MarketDataSource>,
    pub warehouse: Arc<dyn WarehouseLoader>,
}

#[derive(Debug, Clone)]
pub enum TickerOutcome {
    Succeeded,
    /// The watermark already reaches the target date.
    UpToDate,
    Failed(StageError),
}

#[derive(Debug, Clone)]
pub struct TickerSummary {
    pub ticker: String,
    pub outcome: TickerOutcome,
    pub rows_fetched: usize,
    pub rows_written: u64,
    pub rows_loaded: u64,
    pub fetch_time: Duration,
    pub transform_time: Duration,
    pub load_time: Duration,
    /// The range fetched, when there was one.
    pub range: Option<(NaiveDate, NaiveDate)>,
}

impl TickerSummary {
    fn new(ticker: &str) -> TickerSummary {
        TickerSummary {
            ticker: ticker.to_string(),
            outcome: TickerOutcome::Succeeded,
            rows_fetched: 0,
            rows_written: 0,
            rows_loaded: 0,
            fetch_time: Duration::ZERO,
            transform_time: Duration::ZERO,
            load_time: Duration::ZERO,
            range: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: String,
    pub validate_time: Duration,
    pub tickers: Vec<TickerSummary>,
    pub rejected: Vec<TickerError>,
}

impl RunSummary {
    /// Every requested ticker was valid and succeeded (or had nothing to do).
    pub fn all_succeeded(&self) -> bool {
        self.rejected.is_empty()
            && self
                .tickers
                .iter()
                .all(|t| !matches!(t.outcome, TickerOutcome::Failed(_)))
    }

    /// The per-ticker table `mdp run` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
        let _ = writeln!(
            out,
            "run {}  (validate {} ms)",
            self.run_id,
            ms(self.validate_time)
        );
        let _ = writeln!(
            out,
            "{:<12} {:<10} {:<23} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9}",
            "ticker",
            "status",
            "range",
            "fetched",
            "written",
            "loaded",
            "fetch ms",
            "xform ms",
            "load ms"
        );
        for t in &self.tickers {
            let status = match &t.outcome {
                TickerOutcome::Succeeded => "ok",
                TickerOutcome::UpToDate => "up-to-date",
                TickerOutcome::Failed(_) => "FAILED",
            };
            let range = t
                .range
                .map(|(a, b)| format!("{a}..{b}"))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "{:<12} {:<10} {:<23} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9}",
                t.ticker,
                status,
                range,
                t.rows_fetched,
                t.rows_written,
                t.rows_loaded,
                ms(t.fetch_time),
                ms(t.transform_time),
                ms(t.load_time)
            );
        }
        for t in &self.tickers {
            if let TickerOutcome::Failed(e) = &t.outcome {
                let _ = writeln!(out, "{}: {e}", t.ticker);
            }
        }
        for bad in &self.rejected {
            let _ = writeln!(out, "rejected: {bad}");
        }
        out
    }
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
        })
    }

    /// One run: plan, then fetch → transform → load each ticker.
    pub async fn run(
        &self,
        event: &ScheduleEvent,
        today: NaiveDate,
    ) -> Result<RunSummary, StageError> {
        let run_id = new_run_id();
        let started = Instant::now();
        let plan = validate_stage(&self.lake, &self.config, event, today, &run_id).await?;
        let validate_time = started.elapsed();

        let limit = Arc::new(Semaphore::new(TICKER_CONCURRENCY));
        let runs = plan.fetches.iter().map(|request| {
            let limit = limit.clone();
            async move {
                let _permit = limit.acquire().await.expect("semaphore is never closed");
                self.run_ticker(request).await
            }
        });
        let mut tickers: Vec<TickerSummary> = futures::future::join_all(runs).await;
        for t in &plan.up_to_date {
            let mut s = TickerSummary::new(t.as_str());
            s.outcome = TickerOutcome::UpToDate;
            tickers.push(s);
        }
        Ok(RunSummary {
            run_id,
            validate_time,
            tickers,
            rejected: plan.rejected,
        })
    }

    async fn run_ticker(&self, request: &FetchRequest) -> TickerSummary {
        let mut s = TickerSummary::new(request.ticker.as_str());
        s.range = Some((request.start, request.end));
        if let Err(e) = self.run_ticker_stages(request, &mut s).await {
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
        let fetched = fetch_stage(self.source.as_ref(), &self.lake, request).await?;
        s.fetch_time = clock.elapsed();
        s.rows_fetched = fetched.bars_in_range;
        let Some(transform_request) = fetched.next else {
            return Ok(());
        };

        let clock = Instant::now();
        // The run's start stamps new rows, as in the transform function.
        let now = run_started_at(&transform_request.run_id).unwrap_or_else(lake_now);
        let transformed = transform_stage(
            &self.lake,
            &transform_request,
            self.config.parquet_compression,
            now,
        )
        .await?;
        s.transform_time = clock.elapsed();
        s.rows_written = transformed.rows_written;
        let Some(load_request) = transformed.next else {
            return Ok(());
        };

        let clock = Instant::now();
        let loaded = load_stage(
            &self.lake,
            self.warehouse.as_ref(),
            &load_request,
            self.config.load_strategy,
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
        let mut results = Vec::with_capacity(tickers.len());
        for ticker in tickers {
            let result = reload_ticker(
                &self.lake,
                self.warehouse.as_ref(),
                &ticker,
                self.config.load_strategy,
            )
            .await;
            results.push((ticker, result));
        }
        Ok(results)
    }
}
