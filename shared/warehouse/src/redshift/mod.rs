//! Amazon Redshift: the connection over the Postgres wire protocol, and the
//! load from the curated Parquet files in S3 — `COPY … FORMAT AS PARQUET`
//! into a temporary staging table, then one set-based statement per
//! strategy, all in one transaction.
//!
//! # What sqlx sends, and what Redshift gets (sqlx-postgres 0.9.0)
//!
//! At connect (`connection/establish.rs`), the startup message carries
//! `user`, `database`, `DateStyle=ISO, MDY`, `client_encoding=UTF8`,
//! `TimeZone=UTC`, then `extra_float_digits` (sqlx's default `2`; omitted
//! when set to `None`), `application_name` (when set, also from
//! `PGAPPNAME`) and `options` (only when set, e.g. from `PGOPTIONS`). sqlx
//! sends no `SET` or `SHOW` at connect and reads `server_version` from the
//! ParameterStatus messages only. Redshift accepts all of these: `datestyle`,
//! `timezone`, `extra_float_digits` (range -15 to 2, so sqlx's Postgres-12
//! style `3` would be refused: we pin `2`, the largest Redshift takes, which
//! also keeps text-mode floats at 17 significant digits) and
//! `application_name` are Redshift configuration parameters, and UTF8 is its
//! only encoding. Keep `PGOPTIONS` unset for Redshift: sqlx forwards it as
//! the `options` startup parameter and offers no way to drop it.
//!
//! After connect: a pool ping is a bare `Sync` message; `BEGIN`, `COMMIT`
//! and `ROLLBACK` go as simple queries. Every `sqlx::query(…)` (extended
//! protocol: a named prepared statement, Parse/Describe/Bind, binary
//! results) whose parameter or column type OID is not one sqlx knows makes
//! sqlx run its type resolver (`connection/resolve.rs`: `pg_type` joined
//! with `pg_range` and `pg_enum`, `array_agg`, `DISTINCT ON`,
//! `to_regtype`), which Redshift's catalog cannot run. So every Redshift
//! statement here goes through `sqlx::raw_sql` — the simple query protocol:
//! no prepare, no type lookups, text results — with values as escaped
//! literals ([`crate::migrate::literal`]) and counts decoded from text.
//!
//! # The load
//!
//! One transaction ([`load_statements`] generates it, [`run`] executes it):
//!
//! 1. `LOCK` the target: Redshift's serializable isolation would otherwise
//!    abort one of two concurrent loads of the table (the Redshift guide's
//!    advice for concurrent writers); a second delivery of the same load
//!    waits, then finds its work done.
//! 2. `CREATE TEMP TABLE "mdp_stage" (LIKE target)`: same columns, NOT NULLs,
//!    DISTKEY and SORTKEY as the target, so the merge joins are collocated.
//! 3. One `COPY "mdp_stage" (32 contract columns) FROM 's3://…' IAM_ROLE '…'
//!    FORMAT AS PARQUET` per partition file (truncate_insert: one COPY of the
//!    ticker's whole prefix `…/ticker=X/`). Per the Redshift guide ("COPY from
//!    columnar data formats"), a columnar COPY maps file columns to table
//!    columns by position and takes only FROM, IAM_ROLE/CREDENTIALS,
//!    ACCEPTINVCHARS, FILLRECORD, STATUPDATE, MANIFEST and EXPLICIT_IDS (no
//!    REGION: the bucket must be in the cluster's region). The column list
//!    names the target columns in file order (the curated files hold exactly
//!    the 32 contract columns in contract order): it makes the mapping
//!    explicit and keeps working should the table gain columns.
//! 4. A check of the staged rows: all of the ticker, one per date. Redshift
//!    does not enforce the unique (ticker, date) constraint, and MERGE
//!    requires that a target row match at most one source row, so the load
//!    refuses anything else (permanent error, nothing written).
//! 5. The strategy:
//!    - upsert: `DELETE FROM stage USING target` the staged rows identical to
//!      their stored row (NULL-aware comparison of every value column, as the
//!      Redshift guide's merge advice suggests: "add a filter to exclude rows
//!      that have not changed"; Redshift rewrites every updated row, and
//!      stored rows keep their `updated_at`, as on Postgres), count the staged
//!      rows without a stored row (the inserts), then `MERGE INTO target USING
//!      stage ON target.ticker = stage.ticker AND target.date = stage.date
//!      WHEN MATCHED THEN UPDATE SET <every column but the key and created_at>
//!      WHEN NOT MATCHED THEN INSERT (<32 columns>) VALUES (<stage's 32>)` —
//!      the syntax of the Redshift MERGE reference: no target alias, target
//!      columns unqualified in SET, a table (not a subquery) as source.
//!    - append: `INSERT INTO target (<32>) SELECT <32> FROM stage WHERE NOT
//!      EXISTS (<the stored row of that key>)`.
//!    - truncate_insert: `DELETE FROM target WHERE ticker = '…'`, then
//!      `INSERT INTO target (<32>) SELECT <32> FROM stage`.
//! 6. `DROP TABLE "mdp_stage"`: Redshift temporary tables live for the
//!    session (no `ON COMMIT DROP`), and pooled sessions are reused. On a
//!    failure the rollback undoes the CREATE as well.
//!
//! Tested locally: the exact statements of every strategy, and all of them
//! except the `COPY … FROM 's3://…'` lines run against Postgres 15 (which
//! has MERGE) on a staging table filled by other means. The COPY from S3 is
//! the only statement not run before it meets a real Redshift cluster.

#[cfg(test)]
mod on_postgres;
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
use crate::port::{CuratedBatch, LoadReport, WarehouseError, WarehouseLoader, empty_truncate};
use crate::{TableSettings, log_load, migrate, postgres};

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
