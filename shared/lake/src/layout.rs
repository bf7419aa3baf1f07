//! `mdp lake migrate`: rewrites curated files of the earlier layout, which
//! also held the `ticker` partition key as a column (pyarrow, pandas and
//! Athena refuse a column that is also a partition key), in the current one.
//! Values are decoded and written back bit for bit; files already in the
//! current layout are left alone, so running it again changes nothing.

use std::io::Cursor;

use mdp_core::config::ParquetCompression;
use mdp_core::{Lake, StageError, Ticker};
use polars::prelude::{ParquetReader, SerReader};

use crate::{CuratedError, decode_parquet, encode_parquet, read_partition};

/// What the migration of one ticker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayoutReport {
    /// Partitions rewritten in the current layout.
    pub rewritten: Vec<String>,
    /// Partitions already in it.
    pub unchanged: usize,
}

/// Whether a curated file holds a partition key as a column.
fn has_partition_column(bytes: &[u8]) -> bool {
    ParquetReader::new(Cursor::new(bytes))
        .schema()
        .map(|schema| {
            mdp_core::schema::MARKET_DATA
                .iter()
                .filter(|c| c.partition)
                .any(|c| schema.contains(c.name))
        })
        .unwrap_or(false)
}

/// Rewrites the ticker's partitions of the earlier layout, holding the
/// ticker's lock (no transform runs meanwhile).
pub async fn migrate_layout(
    lake: &Lake,
    ticker: &Ticker,
    compression: ParquetCompression,
) -> Result<LayoutReport, StageError> {
    let _lock = lake.lock_ticker(ticker).await?;
    let mut report = LayoutReport::default();
    for (_, key) in lake.curated_partitions(ticker).await? {
        let Some(bytes) = lake.store().get(&key).await? else {
            continue;
        };
        if !has_partition_column(&bytes) {
            report.unchanged += 1;
            continue;
        }
        // Read through the checked reader: a foreign or unreadable file is
        // refused here as it would be anywhere else.
        let rows = read_partition(lake, ticker, &key).await?;
        let encoded =
            encode_parquet(&rows, compression).map_err(|source| CuratedError::Decode {
                key: key.clone(),
                ticker: ticker.to_string(),
                source: Box::new(source),
            })?;
        // Never write back anything that would not read as the same rows.
        let back =
            decode_parquet(&encoded, ticker.as_str()).map_err(|source| CuratedError::Decode {
                key: key.clone(),
                ticker: ticker.to_string(),
                source: Box::new(source),
            })?;
        if back != rows {
            return Err(StageError::permanent(format!(
                "{key}: the rewritten file would not read back as the same rows; left as it is"
            )));
        }
        lake.store().put(&key, encoded).await?;
        report.rewritten.push(key);
    }
    Ok(report)
}
