//! The load stage: curated partitions → warehouse, with the configured strategy.

use std::time::Instant;

use mdp_core::config::LoadStrategy;
use mdp_core::messages::LoadRequest;
use mdp_core::{CuratedRow, Lake, StageError, Ticker};
use mdp_transform::{read_history, read_partition};

use crate::{Failure, LoadReport, Pool, Warehouse, redshift};

/// Loads what a load message names. `truncate_insert` replaces all of the
/// ticker's rows, so it always loads every partition of the ticker, whatever
/// the message lists.
pub async fn load_stage(
    lake: &Lake,
    warehouse: &Warehouse,
    request: &LoadRequest,
    strategy: LoadStrategy,
) -> Result<LoadReport, StageError> {
    warehouse
        .load_from_lake(
            lake,
            &request.ticker,
            Some(&request.partition_keys),
            strategy,
        )
        .await
}

/// Loads every curated row of the ticker (`mdp load`, and `truncate_insert`).
pub async fn reload_ticker(
    lake: &Lake,
    warehouse: &Warehouse,
    ticker: &Ticker,
    strategy: LoadStrategy,
) -> Result<LoadReport, StageError> {
    warehouse.load_from_lake(lake, ticker, None, strategy).await
}

fn refuse_empty_truncate(ticker: &Ticker) -> StageError {
    // An empty lake must not wipe the warehouse's rows of the ticker.
    StageError::permanent(format!(
        "{ticker} has no curated rows in the lake: refusing to truncate its warehouse rows"
    ))
}

/// The partition keys, checked to be curated partitions of `ticker`, oldest
/// year first, without repeats.
fn checked_keys<'k>(ticker: &Ticker, keys: &'k [String]) -> Result<Vec<&'k str>, StageError> {
    let mut years: Vec<(i32, &str)> = Vec::with_capacity(keys.len());
    for key in keys {
        let year = Lake::partition_year(ticker, key).ok_or_else(|| {
            StageError::permanent(format!("{key:?} is not a curated partition of {ticker}"))
        })?;
        years.push((year, key));
    }
    years.sort();
    years.dedup();
    Ok(years.into_iter().map(|(_, key)| key).collect())
}

impl Warehouse {
    /// Loads curated partitions of `ticker` from the lake with `strategy`, as
    /// one transaction: the partitions `partition_keys` names (lake keys such
    /// as `curated/market_data/ticker=AAPL/year=2025/part-0.parquet`), or with
    /// `None` — and always for `truncate_insert`, which replaces all of the
    /// ticker's rows — every partition of the ticker.
    ///
    /// SQLite and Postgres read the Parquet files here and [`Warehouse::load`]
    /// the rows. Redshift reads nothing here: it `COPY`s the files from S3
    /// itself (one COPY per partition, or one of the ticker's whole prefix),
    /// so the lake must be `s3://…` (a permanent error otherwise).
    pub async fn load_from_lake(
        &self,
        lake: &Lake,
        ticker: &Ticker,
        partition_keys: Option<&[String]>,
        strategy: LoadStrategy,
    ) -> Result<LoadReport, StageError> {
        let partition_keys = match strategy {
            LoadStrategy::TruncateInsert => None,
            LoadStrategy::Upsert | LoadStrategy::Append => partition_keys,
        };
        if let Pool::Redshift(pool) = &self.pool {
            return self
                .redshift_load(pool, lake, ticker, partition_keys, strategy)
                .await;
        }
        let rows: Vec<CuratedRow> = match partition_keys {
            Some(keys) => {
                let mut rows = Vec::new();
                for key in checked_keys(ticker, keys)? {
                    rows.extend(read_partition(lake, ticker, key).await?);
                }
                rows
            }
            None => read_history(lake, ticker).await?,
        };
        if rows.is_empty() && strategy == LoadStrategy::TruncateInsert {
            return Err(refuse_empty_truncate(ticker));
        }
        self.load(ticker, &rows, strategy).await
    }

    async fn redshift_load(
        &self,
        pool: &sqlx::PgPool,
        lake: &Lake,
        ticker: &Ticker,
        partition_keys: Option<&[String]>,
        strategy: LoadStrategy,
    ) -> Result<LoadReport, StageError> {
        let what = format!("loading {ticker} into {}", self.qualified_name());
        let permanent = |why: String| StageError::permanent(format!("{what}: {why}"));
        let keys: Vec<String> = match partition_keys {
            Some(keys) => checked_keys(ticker, keys)?
                .into_iter()
                .map(str::to_string)
                .collect(),
            None => {
                // COPY from a prefix without objects fails: look first.
                if lake.curated_partitions(ticker).await?.is_empty() {
                    return match strategy {
                        LoadStrategy::TruncateInsert => Err(refuse_empty_truncate(ticker)),
                        _ => Ok(LoadReport::default()),
                    };
                }
                vec![Lake::curated_prefix(ticker)]
            }
        };
        if keys.is_empty() {
            return Ok(LoadReport::default());
        }
        let uris = keys
            .iter()
            .map(|key| redshift::s3_uri(&lake.uri(), key))
            .collect::<Result<Vec<_>, _>>()
            .map_err(permanent)?;
        let role = self.redshift_iam_role.as_deref().ok_or_else(|| {
            permanent("invalid configuration: WAREHOUSE_REDSHIFT_IAM_ROLE is not set".into())
        })?;
        let statements = redshift::load_statements(
            &self.schema,
            &self.table,
            &uris,
            role,
            strategy,
            ticker.as_str(),
        );
        let started = Instant::now();
        let report = redshift::load(pool, &statements)
            .await
            .map_err(|e: Failure| self.fail(&what, e))?;
        self.log_load(ticker, strategy, &report, started);
        Ok(report)
    }
}
