//! Amazon Redshift over the Postgres wire protocol. A load never sends rows:
//! Redshift `COPY`s the curated Parquet objects from S3 into a staging table
//! under an IAM role, then one set-based statement applies the strategy, all
//! in one transaction ([`statements`] holds every statement as data).
//!
//! Why it differs from the Postgres adapter:
//! - Only startup parameters Redshift accepts are sent (`extra_float_digits`
//!   is pinned to 2, the largest it takes; keep `PGOPTIONS` unset, since the
//!   driver forwards it as a startup parameter).
//! - Every statement uses the simple query protocol (`raw_sql`): prepared
//!   statements make the driver look types up in catalog tables Redshift
//!   does not have. Values go as escaped literals, counts come back as text.
//! - Redshift enforces no unique key and has serializable isolation: a load
//!   `LOCK`s the table and checks the staged rows (one ticker, one row per
//!   date) before it merges; the temporary staging table is dropped at the
//!   end because pooled sessions are reused.
//!
//! Tested locally: the exact statements of every strategy, and all of them
//! except the `COPY … FROM 's3://…'` lines against Postgres 15 (which has
//! MERGE). The COPY from S3 is the one statement not run before it meets a
//! real cluster.

#[cfg(test)]
mod on_postgres;
mod side;
mod statements;
#[cfg(test)]
mod tests;

use std::time::Instant;

use async_trait::async_trait;
use mdp_core::config::{LoadStrategy, WarehouseKind};
use mdp_core::connection::{ServerTarget, WarehouseConnection};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use crate::errors::{Failure, Secrets};
use crate::port::{
    CuratedBatch, LoadReport, WarehouseError, WarehouseLoader, checked_side, empty_truncate,
};
use crate::side::{SideBatch, SideReport};
use crate::{TableSettings, log_load, log_side, migrate, postgres};

use statements::{load_statements, s3_uri};

/// The warehouse in Redshift: loads `COPY` the curated objects from the S3
/// lake under an IAM role; no row passes through this process.
pub struct RedshiftWarehouse {
    pool: PgPool,
    schema: String,
    table: String,
    iam_role: String,
    secrets: Secrets,
    description: String,
}

impl RedshiftWarehouse {
    /// Connects to a Redshift cluster (`redshift://user:pass@host:5439/db`); `iam_role` is
    /// the role Redshift assumes to read the lake (`WAREHOUSE_REDSHIFT_IAM_ROLE`).
    pub async fn connect(
        target: &ServerTarget,
        iam_role: &str,
        settings: &TableSettings,
    ) -> Result<Self, WarehouseError> {
        postgres::check_ssl_root_cert(target)?;
        let connection = WarehouseConnection::Server(target.clone());
        let secrets = Secrets::of(&connection);
        let redacted = connection.redacted();
        let what = format!("connecting to warehouse {redacted}");
        let pool = postgres::connect_with(connect_options(target), settings.pool_size)
            .await
            .map_err(|e| e.into_error(WarehouseKind::Redshift, &secrets, &what))?;
        Ok(RedshiftWarehouse {
            pool,
            schema: settings.schema.clone(),
            table: settings.table.clone(),
            iam_role: iam_role.to_string(),
            secrets,
            description: format!(
                "redshift {redacted} table {}.{}",
                settings.schema, settings.table
            ),
        })
    }

    fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn fail(&self, what: &str) -> impl FnOnce(Failure) -> WarehouseError + '_ {
        let what = what.to_string();
        move |e| e.into_error(WarehouseKind::Redshift, &self.secrets, &what)
    }
}

#[async_trait]
impl WarehouseLoader for RedshiftWarehouse {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn migrate(&self) -> Result<(), WarehouseError> {
        migrate::migrate_pg(
            &self.pool,
            WarehouseKind::Redshift,
            &self.schema,
            &self.table,
        )
        .await
        .map_err(self.fail(&format!(
            "migrating warehouse table {}",
            self.qualified_name()
        )))
    }

    /// `COPY`s the named partitions (or the ticker's whole prefix) from S3,
    /// so the lake must be `s3://…` (a permanent error otherwise).
    async fn load(
        &self,
        batch: &CuratedBatch<'_>,
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError> {
        let ticker = batch.ticker;
        let what = format!("loading {ticker} into {}", self.qualified_name());
        let keys = batch
            .object_keys()
            .await
            .map_err(|source| WarehouseError::Lake {
                what: what.clone(),
                source,
            })?;
        if keys.is_empty() {
            // COPY from a prefix without objects fails: there is nothing to load.
            return match strategy {
                LoadStrategy::TruncateInsert => Err(empty_truncate(ticker)),
                _ => Ok(LoadReport::default()),
            };
        }
        let lake_uri = batch.lake.uri();
        let uris = keys
            .iter()
            .map(|key| s3_uri(&lake_uri, key))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| WarehouseError::Refused {
                what: what.clone(),
                why,
            })?;
        let statements = load_statements(
            &self.schema,
            &self.table,
            &uris,
            &self.iam_role,
            strategy,
            ticker.as_str(),
        );
        let started = Instant::now();
        let report = statements::load(&self.pool, &statements)
            .await
            .map_err(self.fail(&what))?;
        log_load(ticker, &self.qualified_name(), strategy, &report, started);
        Ok(report)
    }

    /// The side data is in this process, not in S3: it goes as literals
    /// in a few statements ([`side`]), in one transaction that first
    /// `LOCK`s the three side tables.
    async fn load_side(
        &self,
        batch: &SideBatch<'_>,
        strategy: LoadStrategy,
    ) -> Result<SideReport, WarehouseError> {
        let what = format!(
            "loading the side data of {} into schema {}",
            batch.ticker, self.schema
        );
        checked_side(batch, &what)?;
        let started = Instant::now();
        let result = async {
            let mut tx = self.pool.begin().await?;
            match side::run(&mut tx, &self.schema, batch, strategy).await {
                Ok(report) => {
                    tx.commit().await?;
                    Ok(report)
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            }
        }
        .await;
        let report = result.map_err(self.fail(&what))?;
        log_side(batch.ticker, &self.schema, strategy, &report, started);
        Ok(report)
    }

    async fn close(&self) {
        self.pool.close().await
    }
}

/// Connection options for a Redshift target: the Postgres options of its
/// fields, and only startup parameters Redshift accepts (see the module
/// documentation).
pub(crate) fn connect_options(target: &ServerTarget) -> PgConnectOptions {
    postgres::connect_options(target).extra_float_digits(2)
}
