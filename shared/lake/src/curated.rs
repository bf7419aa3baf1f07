//! Reading a ticker's curated partitions back as rows.

use futures::StreamExt;
use mdp_core::{CuratedRow, ErrorClass, Lake, StageError, StoreError, Ticker};

use crate::parquet::{ParquetError, decode_parquet};

/// A curated partition that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CuratedError {
    #[error("reading curated partition {key}")]
    Store {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("curated partition {key} does not exist")]
    Missing { key: String },
    #[error(
        "curated partition {key} is not a readable curated Parquet file \
         (`mdp state rebuild --tickers {ticker}` moves it to quarantine/ and says how to fetch it again)"
    )]
    Decode {
        key: String,
        ticker: String,
        #[source]
        source: Box<ParquetError>,
    },
    #[error(
        "{key} holds a row of {found} inside the partition of {ticker} \
         (`mdp state rebuild --tickers {ticker}` moves it to quarantine/)"
    )]
    ForeignRow {
        key: String,
        ticker: String,
        found: String,
    },
}

impl CuratedError {
    /// Store failures keep their class; a missing or unreadable partition
    /// stays so however often it is read.
    pub fn class(&self) -> ErrorClass {
        match self {
            CuratedError::Store { source, .. } => source.class(),
            _ => ErrorClass::Permanent,
        }
    }
}

impl From<CuratedError> for StageError {
    fn from(e: CuratedError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

/// Reads one curated partition, checking it belongs to `ticker`.
pub async fn read_partition(
    lake: &Lake,
    ticker: &Ticker,
    key: &str,
) -> Result<Vec<CuratedRow>, CuratedError> {
    let bytes = lake
        .store()
        .get(key)
        .await
        .map_err(|source| CuratedError::Store {
            key: key.to_string(),
            source,
        })?
        .ok_or_else(|| CuratedError::Missing {
            key: key.to_string(),
        })?;
    let rows = decode_parquet(&bytes, ticker.as_str()).map_err(|source| CuratedError::Decode {
        key: key.to_string(),
        ticker: ticker.to_string(),
        source: Box::new(source),
    })?;
    if let Some(other) = rows.iter().find(|r| r.ticker != ticker.as_str()) {
        return Err(CuratedError::ForeignRow {
            key: key.to_string(),
            ticker: ticker.to_string(),
            found: other.ticker.clone(),
        });
    }
    Ok(rows)
}

/// Partition reads of one call in flight at once: on S3 each GET is a round
/// trip of milliseconds, and a 20-year history is 21 of them.
const PARTITION_READS_IN_FLIGHT: usize = 8;

/// Reads the named partitions, a few at a time, into rows in the order given.
pub async fn read_partitions(
    lake: &Lake,
    ticker: &Ticker,
    keys: &[String],
) -> Result<Vec<CuratedRow>, CuratedError> {
    // The futures are made up front: a stream mapping keys to futures makes
    // the callers' futures (async trait methods) fail to prove `Send`.
    let reads: Vec<_> = keys
        .iter()
        .map(|key| read_partition(lake, ticker, key))
        .collect();
    let mut reads = futures::stream::iter(reads).buffered(PARTITION_READS_IN_FLIGHT);
    let mut rows = Vec::new();
    while let Some(partition) = reads.next().await {
        rows.extend(partition?);
    }
    Ok(rows)
}

/// Reads every curated row of the ticker, oldest first.
pub async fn read_history(lake: &Lake, ticker: &Ticker) -> Result<Vec<CuratedRow>, CuratedError> {
    let prefix = Lake::curated_prefix(ticker);
    let keys: Vec<String> = lake
        .curated_partitions(ticker)
        .await
        .map_err(|source| CuratedError::Store {
            key: prefix,
            source,
        })?
        .into_iter()
        .map(|(_, key)| key)
        .collect();
    read_partitions(lake, ticker, &keys).await
}
