//! What a run did, per ticker, and the table `mdp run` prints.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::NaiveDate;
use mdp_core::StageError;
use mdp_core::ticker::TickerError;

#[derive(Debug, Clone)]
pub enum TickerOutcome {
    Succeeded,
    /// The watermark already reaches the target date.
    UpToDate,
    /// Nothing to fetch, but the warehouse was behind the lake and loaded
    /// what it missed.
    CaughtUp,
    Failed(StageError),
}

#[derive(Debug, Clone)]
pub struct TickerSummary {
    pub ticker: String,
    pub outcome: TickerOutcome,
    pub rows_fetched: usize,
    pub rows_written: u64,
    /// Bars of the range the data-quality gate kept out of the curated zone.
    pub bars_quarantined: usize,
    pub rows_loaded: u64,
    pub fetch_time: Duration,
    pub transform_time: Duration,
    pub load_time: Duration,
    /// The range fetched, when there was one.
    pub range: Option<(NaiveDate, NaiveDate)>,
}

impl TickerSummary {
    pub(crate) fn new(ticker: &str) -> TickerSummary {
        TickerSummary {
            ticker: ticker.to_string(),
            outcome: TickerOutcome::Succeeded,
            rows_fetched: 0,
            rows_written: 0,
            bars_quarantined: 0,
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

    /// The summary as JSON, for orchestrators (`mdp run --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
        let tickers: Vec<serde_json::Value> = self
            .tickers
            .iter()
            .map(|t| {
                let (status, error) = match &t.outcome {
                    TickerOutcome::Succeeded => ("ok", None),
                    TickerOutcome::UpToDate => ("up-to-date", None),
                    TickerOutcome::CaughtUp => ("caught-up", None),
                    TickerOutcome::Failed(e) => ("failed", Some(e.message())),
                };
                serde_json::json!({
                    "ticker": t.ticker,
                    "status": status,
                    "error": error,
                    "error_class": match &t.outcome {
                        TickerOutcome::Failed(e) => Some(e.class.to_string()),
                        _ => None,
                    },
                    "start": t.range.map(|r| r.0),
                    "end": t.range.map(|r| r.1),
                    "rows_fetched": t.rows_fetched,
                    "rows_written": t.rows_written,
                    "bars_quarantined": t.bars_quarantined,
                    "rows_loaded": t.rows_loaded,
                    "fetch_ms": ms(t.fetch_time),
                    "transform_ms": ms(t.transform_time),
                    "load_ms": ms(t.load_time),
                })
            })
            .collect();
        serde_json::json!({
            "run_id": self.run_id,
            "succeeded": self.all_succeeded(),
            "validate_ms": ms(self.validate_time),
            "tickers": tickers,
            "rejected": self.rejected.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        })
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
                TickerOutcome::CaughtUp => "caught-up",
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
        for t in self.tickers.iter().filter(|t| t.bars_quarantined > 0) {
            let _ = writeln!(
                out,
                "{}: {} bar(s) quarantined by the data-quality gate (`mdp status`, quarantine/market_data/)",
                t.ticker, t.bars_quarantined
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
