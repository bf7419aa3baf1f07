//! The transform stage: raw response → bars of the range → merged history →
//! indicators → curated Parquet partitions and the watermark.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Utc};
use mdp_core::chart::{ChartParseError, parse_chart};
use mdp_core::config::ParquetCompression;
use mdp_core::messages::{LoadRequest, MESSAGE_VERSION, TransformRequest};
use mdp_core::{CuratedRow, ErrorClass, Lake, StageError, StoreError, Watermark};

use mdp_lake::{CuratedError, ParquetError, encode_parquet, read_history};

use crate::history::merge_history;

/// Why a transform message could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("raw_key {raw_key:?} is not in the raw zone of {ticker} ({expected_prefix})")]
    RawKeyElsewhere {
        raw_key: String,
        ticker: String,
        expected_prefix: String,
    },
    #[error("raw response {key} does not exist")]
    RawMissing { key: String },
    #[error("reading raw response {key}")]
    RawRead {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("raw response {key}")]
    RawUnparseable {
        key: String,
        #[source]
        source: ChartParseError,
    },
    #[error("reading the stored history")]
    History(#[from] CuratedError),
    #[error("encoding {key}")]
    Encode {
        key: String,
        #[source]
        source: ParquetError,
    },
    #[error("writing {key}")]
    Write {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("reading or writing the watermark")]
    Watermark(#[source] StoreError),
    #[error("locking the ticker's history")]
    Lock(#[source] StoreError),
}

impl TransformError {
    /// Store failures keep their class; a bad message or a bad raw response
    /// stays bad.
    pub fn class(&self) -> ErrorClass {
        match self {
            TransformError::RawRead { source, .. } | TransformError::Write { source, .. } => {
                source.class()
            }
            TransformError::History(e) => e.class(),
            TransformError::Watermark(e) | TransformError::Lock(e) => e.class(),
            TransformError::RawKeyElsewhere { .. }
            | TransformError::RawMissing { .. }
            | TransformError::RawUnparseable { .. }
            | TransformError::Encode { .. } => ErrorClass::Permanent,
        }
    }
}

impl From<TransformError> for StageError {
    fn from(e: TransformError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

#[derive(Debug, Clone)]
pub struct TransformOutcome {
    /// Bars with a close dated inside the request's range.
    pub bars_in_range: usize,
    /// Curated rows of the ticker after the merge.
    pub rows_total: u64,
    /// Rows in the partitions rewritten (unchanged partitions are not rewritten).
    pub rows_written: u64,
    pub partitions_written: Vec<String>,
    /// The load message; `None` when the range held no bars.
    pub next: Option<LoadRequest>,
}

pub async fn transform_stage(
    lake: &Lake,
    request: &TransformRequest,
    compression: ParquetCompression,
    now: DateTime<Utc>,
) -> Result<TransformOutcome, StageError> {
    let ticker = &request.ticker;
    let expected_prefix = format!("raw/yahoo/chart/ticker={}/", ticker.partition_value());
    if !request.raw_key.starts_with(&expected_prefix) {
        return Err(TransformError::RawKeyElsewhere {
            raw_key: request.raw_key.clone(),
            ticker: ticker.to_string(),
            expected_prefix,
        }
        .into());
    }
    let key = &request.raw_key;
    let raw = lake
        .store()
        .get(key)
        .await
        .map_err(|source| TransformError::RawRead {
            key: key.clone(),
            source,
        })?
        .ok_or_else(|| TransformError::RawMissing { key: key.clone() })?;
    let series = parse_chart(&raw).map_err(|source| TransformError::RawUnparseable {
        key: key.clone(),
        source,
    })?;
    let incoming = series.bars_in_range(request.start, request.end);

    // One transform of a ticker at a time (in this process, and across
    // processes sharing a local lake): the history read here is still the
    // history when the partitions and the watermark below are written.
    let _lock = lake
        .lock_ticker(ticker)
        .await
        .map_err(TransformError::Lock)?;
    let stored_mark = lake
        .read_watermark(ticker)
        .await
        .map_err(TransformError::Watermark)?;
    let stored = read_history(lake, ticker)
        .await
        .map_err(TransformError::History)?;
    mdp_core::crash::point("transform.after_history_read");
    let rows = merge_history(ticker.as_str(), &stored, &incoming, &series.meta, now);
    let stored_by_year = group_by_year(&stored);
    let merged_by_year = group_by_year(&rows);

    let touched_years: BTreeSet<i32> = incoming.iter().map(|b| b.date.year()).collect();
    let mut written = Vec::new();
    let mut rows_written = 0u64;
    let mut to_load: BTreeSet<i32> = touched_years.clone();
    for (year, year_rows) in &merged_by_year {
        let unchanged = stored_by_year.get(year).is_some_and(|old| {
            old.len() == year_rows.len()
                && old
                    .iter()
                    .zip(year_rows)
                    .all(|(a, b)| a.same_values(b) && a.updated_at == b.updated_at)
        });
        if unchanged {
            continue;
        }
        let key = Lake::curated_key(ticker, *year);
        let owned: Vec<CuratedRow> = year_rows.iter().map(|r| (*r).clone()).collect();
        let bytes =
            encode_parquet(&owned, compression).map_err(|source| TransformError::Encode {
                key: key.clone(),
                source,
            })?;
        lake.store()
            .put(&key, bytes)
            .await
            .map_err(|source| TransformError::Write {
                key: key.clone(),
                source,
            })?;
        rows_written += owned.len() as u64;
        written.push((*year, key));
        to_load.insert(*year);
        mdp_core::crash::point("transform.after_partition");
    }

    if let Some(last) = rows.last() {
        let (mut generation, mut partitions) = stored_mark
            .map(|m| (m.generation, m.partitions))
            .unwrap_or_default();
        if !written.is_empty() {
            generation += 1;
            for (year, _) in &written {
                partitions.insert(*year, generation);
            }
        }
        mdp_core::crash::point("transform.before_watermark");
        lake.write_watermark(
            ticker,
            &Watermark {
                last_date: last.date(),
                rows: rows.len() as u64,
                updated_at: now,
                generation,
                partitions,
                instrument_type: last.meta.instrument_type.clone(),
            },
        )
        .await
        .map_err(TransformError::Watermark)?;
        mdp_core::crash::point("transform.after_watermark");
    }

    let next = (!incoming.is_empty()).then(|| {
        let load_rows: Vec<&CuratedRow> = to_load
            .iter()
            .flat_map(|y| merged_by_year[y].iter().copied())
            .collect();
        LoadRequest {
            v: MESSAGE_VERSION,
            run_id: request.run_id.clone(),
            ticker: ticker.clone(),
            partition_keys: to_load
                .iter()
                .map(|y| Lake::curated_key(ticker, *y))
                .collect(),
            rows: load_rows.len() as u64,
            min_date: load_rows.first().map(|r| r.date()),
            max_date: load_rows.last().map(|r| r.date()),
        }
    });
    Ok(TransformOutcome {
        bars_in_range: incoming.len(),
        rows_total: rows.len() as u64,
        rows_written,
        partitions_written: written.into_iter().map(|(_, key)| key).collect(),
        next,
    })
}

fn group_by_year(rows: &[CuratedRow]) -> BTreeMap<i32, Vec<&CuratedRow>> {
    let mut by_year: BTreeMap<i32, Vec<&CuratedRow>> = BTreeMap::new();
    for row in rows {
        by_year.entry(row.date().year()).or_default().push(row);
    }
    by_year
}
