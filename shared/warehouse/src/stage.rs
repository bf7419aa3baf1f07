//! The load stage: curated partitions → warehouse, with the configured strategy.

use mdp_core::config::LoadStrategy;
use mdp_core::messages::LoadRequest;
use mdp_core::{CuratedRow, Lake, StageError, Ticker};
use mdp_transform::{read_history, read_partition};

use crate::{LoadReport, Warehouse};

/// Loads what a load message names. `truncate_insert` replaces all of the
/// ticker's rows, so it always loads every partition of the ticker, whatever
/// the message lists.
pub async fn load_stage(
    lake: &Lake,
    warehouse: &Warehouse,
    request: &LoadRequest,
    strategy: LoadStrategy,
) -> Result<LoadReport, StageError> {
    let ticker = &request.ticker;
    if strategy == LoadStrategy::TruncateInsert {
        return reload_ticker(lake, warehouse, ticker, strategy).await;
    }
    let mut keys: Vec<(i32, &str)> = Vec::with_capacity(request.partition_keys.len());
    for key in &request.partition_keys {
        let year = Lake::partition_year(ticker, key).ok_or_else(|| {
            StageError::permanent(format!("{key:?} is not a curated partition of {ticker}"))
        })?;
        keys.push((year, key));
    }
    keys.sort();
    keys.dedup();
    let mut rows: Vec<CuratedRow> = Vec::new();
    for (_, key) in keys {
        rows.extend(read_partition(lake, ticker, key).await?);
    }
    warehouse.load(ticker, &rows, strategy).await
}

/// Loads every curated row of the ticker (`mdp load`, and `truncate_insert`).
pub async fn reload_ticker(
    lake: &Lake,
    warehouse: &Warehouse,
    ticker: &Ticker,
    strategy: LoadStrategy,
) -> Result<LoadReport, StageError> {
    let rows = read_history(lake, ticker).await?;
    if rows.is_empty() && strategy == LoadStrategy::TruncateInsert {
        // An empty lake must not wipe the warehouse's rows of the ticker.
        return Err(StageError::permanent(format!(
            "{ticker} has no curated rows in the lake: refusing to truncate its warehouse rows"
        )));
    }
    warehouse.load(ticker, &rows, strategy).await
}
