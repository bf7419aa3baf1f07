//! `mdp state rebuild`: the way back from a corrupt watermark or partition.
//! Every curated partition of the ticker is read; one that cannot be read is
//! moved aside to `quarantine/` (kept for a look, out of every reader's way);
//! the watermark is rebuilt from what remains, with a new generation for
//! every partition, so the next run also reloads the warehouse from them.

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::{Lake, StageError, Ticker, Watermark};
use mdp_lake::read_partition;

/// What a rebuild found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    /// Curated rows in the readable partitions.
    pub rows: u64,
    pub last_date: Option<NaiveDate>,
    /// Partitions moved to `quarantine/` (their lake keys), with why.
    pub quarantined: Vec<(String, String)>,
}

impl RebuildReport {
    /// The `mdp run` commands that fetch the quarantined years again.
    pub fn refetch_commands(&self, ticker: &Ticker) -> Vec<String> {
        self.quarantined
            .iter()
            .filter_map(|(key, _)| Lake::partition_year(ticker, key))
            .map(|year| {
                format!("mdp run --tickers {ticker} --start {year}-01-01 --end {year}-12-31")
            })
            .collect()
    }
}

/// Rebuilds the ticker's watermark from its readable curated partitions,
/// quarantining the unreadable ones. Holds the ticker's lock throughout.
pub async fn rebuild_state(
    lake: &Lake,
    ticker: &Ticker,
    now: DateTime<Utc>,
) -> Result<RebuildReport, StageError> {
    let _lock = lake.lock_ticker(ticker).await?;
    // An unreadable watermark is what this repairs: its generation is lost,
    // and a fresh count still makes every partition newer than any load.
    let previous = lake.read_watermark(ticker).await.ok().flatten();
    let generation = previous.as_ref().map_or(0, |m| m.generation) + 1;
    let (quarantined_bars, quality_findings) = previous
        .as_ref()
        .map_or((0, 0), |m| (m.quarantined_bars, m.quality_findings));
    let mut instrument_type = previous.and_then(|m| m.instrument_type);
    let mut report = RebuildReport {
        rows: 0,
        last_date: None,
        quarantined: Vec::new(),
    };
    let mut partitions = std::collections::BTreeMap::new();
    for (year, key) in lake.curated_partitions(ticker).await? {
        match read_partition(lake, ticker, &key).await {
            Ok(rows) => {
                report.rows += rows.len() as u64;
                if let Some(last) = rows.iter().max_by_key(|r| r.date())
                    && report.last_date < Some(last.date())
                {
                    report.last_date = Some(last.date());
                    instrument_type = last.meta.instrument_type.clone().or(instrument_type);
                }
                partitions.insert(year, generation);
            }
            Err(e) if e.class() == mdp_core::ErrorClass::Permanent => {
                let bytes = lake.store().get(&key).await?.unwrap_or_default();
                lake.store()
                    .put(&format!("quarantine/{key}"), bytes)
                    .await?;
                lake.store().delete(&key).await?;
                tracing::warn!(%ticker, %key, error = %mdp_core::error::chain(&e), "unreadable partition moved to quarantine/");
                report.quarantined.push((key, mdp_core::error::chain(&e)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    match report.last_date {
        Some(last_date) => {
            let mark = Watermark {
                indicator_tail: None,
                quarantined_bars,
                quality_findings,
                last_date,
                rows: report.rows,
                updated_at: now,
                generation,
                partitions,
                instrument_type,
            };
            lake.write_watermark(ticker, &mark).await?;
        }
        // Nothing readable is left: no watermark, so the next run backfills.
        None => lake.store().delete(&Lake::state_key(ticker)).await?,
    }
    Ok(report)
}
