//! The load stage: a load message's curated partitions → the warehouse, with
//! the configured strategy, over the two ports it needs (the lake and a
//! [`WarehouseLoader`]).

use mdp_core::config::LoadStrategy;
use mdp_core::lake::LoadMark;
use mdp_core::messages::LoadRequest;
use mdp_core::{Lake, StageError, Ticker};

use mdp_lake::{read_corporate_actions, read_quality_findings, read_quarantine};

use crate::port::{CuratedBatch, LoadReport, Partitions, WarehouseError, WarehouseLoader};
use crate::side::{SideBatch, SideReport};

/// Loads what a load message names. `truncate_insert` replaces all of the
/// ticker's rows, so it always loads every partition of the ticker, whatever
/// the message lists.
pub async fn load_stage(
    lake: &Lake,
    warehouse: &dyn WarehouseLoader,
    request: &LoadRequest,
    strategy: LoadStrategy,
) -> Result<LoadReport, StageError> {
    if request.partition_keys.is_empty() {
        // Every bar of the range was quarantined: no curated row changed,
        // but the quarantine goes to the warehouse.
        load_side_files(lake, warehouse, &request.ticker, strategy).await?;
        return Ok(LoadReport::default());
    }
    let partitions = match strategy {
        LoadStrategy::TruncateInsert => Partitions::WholeTicker,
        LoadStrategy::Upsert | LoadStrategy::Append => {
            Partitions::Keys(checked_keys(&request.ticker, &request.partition_keys)?)
        }
    };
    let batch = CuratedBatch {
        lake,
        ticker: &request.ticker,
        partitions,
    };
    load_and_record(&batch, warehouse, strategy).await
}

/// Loads every curated row of the ticker (`mdp load`).
pub async fn reload_ticker(
    lake: &Lake,
    warehouse: &dyn WarehouseLoader,
    ticker: &Ticker,
    strategy: LoadStrategy,
) -> Result<LoadReport, StageError> {
    let batch = CuratedBatch {
        lake,
        ticker,
        partitions: Partitions::WholeTicker,
    };
    load_and_record(&batch, warehouse, strategy).await
}

/// Loads, then records in the lake which watermark generation the warehouse
/// now holds (read before the load, so the record never claims more than
/// was loaded): the next validate compares it with the watermark and plans
/// a load of whatever a failed or killed load left out. A load of some
/// partitions records the generation only when it took every partition the
/// warehouse was missing: otherwise an earlier failed load's years would
/// count as loaded.
async fn load_and_record(
    batch: &CuratedBatch<'_>,
    warehouse: &dyn WarehouseLoader,
    strategy: LoadStrategy,
) -> Result<LoadReport, StageError> {
    let ticker = batch.ticker;
    // An unreadable watermark does not stop the load; it only goes unrecorded
    // (validate reports the watermark itself).
    let watermark = match batch.lake.read_watermark(ticker).await {
        Ok(watermark) => Some(watermark),
        Err(e) => {
            tracing::warn!(%ticker, error = %mdp_core::error::chain(&e), "watermark unreadable: the load is not recorded");
            None
        }
    };
    let report = warehouse.load(batch, strategy).await?;
    mdp_core::crash::point("load.before_record");
    let Some(watermark) = watermark else {
        return Ok(report);
    };
    if let (Partitions::Keys(keys), Some(watermark)) = (&batch.partitions, &watermark) {
        let loaded = match batch.lake.read_load_mark(ticker).await {
            Ok(mark) => mark.map_or(0, |m| m.generation),
            // Unreadable: assume nothing loaded, so only a complete load records.
            Err(_) => 0,
        };
        let missed: Vec<i32> = watermark
            .years_after(loaded)
            .into_iter()
            .filter(|year| !keys.contains(&Lake::curated_key(ticker, *year)))
            .collect();
        if !missed.is_empty() {
            tracing::info!(%ticker, ?missed, "the load left out partitions the warehouse misses: not recorded, the next run loads them");
            return Ok(report);
        }
    }
    let mark = LoadMark {
        generation: watermark.map_or(0, |m| m.generation),
        loaded_at: chrono::Utc::now(),
    };
    batch
        .lake
        .write_load_mark(ticker, &mark)
        .await
        .map_err(|e| StageError::from(e).context(format!("recording the load of {ticker}")))?;
    load_side_files(batch.lake, warehouse, ticker, strategy).await?;
    Ok(report)
}

/// Loads the ticker's corporate actions, quality findings and quarantined
/// bars (each file the ticker's whole set) after its market data. A load
/// that fails here is retried whole: the market data part is idempotent.
async fn load_side_files(
    lake: &Lake,
    warehouse: &dyn WarehouseLoader,
    ticker: &Ticker,
    strategy: LoadStrategy,
) -> Result<SideReport, StageError> {
    let read = |what: &str| {
        let what = format!("reading the {what} of {ticker}");
        move |source| StageError::from(WarehouseError::Lake { what, source })
    };
    let (actions, findings, quarantine) = futures::future::try_join3(
        async {
            read_corporate_actions(lake, ticker)
                .await
                .map_err(read("corporate actions"))
        },
        async {
            read_quality_findings(lake, ticker)
                .await
                .map_err(read("quality findings"))
        },
        async {
            read_quarantine(lake, ticker)
                .await
                .map_err(read("quarantined bars"))
        },
    )
    .await?;
    let side = SideBatch {
        ticker,
        actions: &actions,
        findings: &findings,
        quarantine: &quarantine,
        now: chrono::Utc::now(),
    };
    Ok(warehouse.load_side(&side, strategy).await?)
}

/// The partition keys, checked to be curated partitions of `ticker`, oldest
/// year first, without repeats: keys come from a queue message, and a load
/// must never read another ticker's files.
fn checked_keys(ticker: &Ticker, keys: &[String]) -> Result<Vec<String>, WarehouseError> {
    let mut years: Vec<(i32, &str)> = Vec::with_capacity(keys.len());
    for key in keys {
        let year = Lake::partition_year(ticker, key).ok_or_else(|| WarehouseError::Refused {
            what: format!("load message of {ticker}"),
            why: format!("{key:?} is not a curated partition of {ticker}"),
        })?;
        years.push((year, key));
    }
    years.sort();
    years.dedup();
    Ok(years.into_iter().map(|(_, key)| key.to_string()).collect())
}
