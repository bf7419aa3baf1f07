//! The migration runner: applies the versions of `infra/warehouse/<dialect>/`
//! (see [`crate::ddl`]) that a table has not had yet, oldest first, each in
//! its own transaction together with its record in `mdp_schema_migrations`.
//!
//! Bookkeeping: `mdp_schema_migrations` lives in the warehouse schema (SQLite:
//! the database) and holds one row per (table, version) applied:
//!
//! ```text
//! table_name TEXT, version INT, description TEXT, applied_at TIMESTAMPTZ,
//! PRIMARY KEY (table_name, version)
//! ```
//!
//! The table name is part of the key because the migrations are templates of
//! the fact table's name (`WAREHOUSE_TABLE_MARKET_DATA`): several fact tables
//! can share a schema (the benchmarks and tests do), and each has its own history.
//!
//! Databases that predate the versioning: when the fact table exists but
//! has no record, version 1 (which only creates the table) is recorded as
//! applied without running it, and the later versions run as usual — on
//! Postgres, 002 adopts a table created by the original Airflow DDL (adds
//! `adj_close`, widens `ticker`, adds the missing indexes). After migrating,
//! the table must have every contract column, or migrate fails with the list
//! of what is missing.
//!
//! A table that was dropped (`Warehouse::drop_table`, `mdp bench`) has stale
//! records: they are deleted and every version applies again.
//!
//! The side tables (`fact_corporate_actions`, `quality_quarantine`,
//! `quality_findings`: [`crate::side`]) have fixed names, shared by every
//! fact table of the schema; the migration creating them is recorded per
//! fact table like the others (its statements are idempotent). When one of
//! them is missing, that migration counts as not applied and runs again.
//! After migrating, each must have all its columns too.
//!
//! Concurrency: Postgres serialises migrations of a schema with
//! `pg_advisory_xact_lock` taken first in each version's transaction, and
//! re-reads the records under it, so concurrent cold starts apply each version
//! once. Redshift has no advisory locks: each transaction `LOCK`s
//! `mdp_schema_migrations` instead. SQLite takes the database write lock
//! (`BEGIN IMMEDIATE`).
//!
//! When every version is recorded, migrate only reads (no DDL, no lock): a
//! loader role without CREATE privileges can run it.
//!
//! Postgres and Redshift statements go through the simple query protocol
//! (`raw_sql`, values as escaped literals): see [`crate::redshift`] for why
//! Redshift needs that; Postgres shares the code.

use std::collections::BTreeSet;

use mdp_core::config::WarehouseKind;
use mdp_core::schema::COLUMNS;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Row, SqliteConnection, SqlitePool};

use crate::ddl::{Migration, migrations};
use crate::errors::Failure;
use crate::side::{SIDE_TABLES, SideTable};
use crate::sql::{literal, quote_ident};

/// The bookkeeping table.
pub(crate) const MIGRATIONS_TABLE: &str = "mdp_schema_migrations";

/// Postgres or Redshift: the same wire protocol, different locks and clock.
type Flavor = WarehouseKind;

/// The name as the catalog stores it: Redshift folds quoted identifiers
/// to lower case (unless `enable_case_sensitive_identifier` is on).
fn catalog_name(flavor: Flavor, ident: &str) -> String {
    match flavor {
        Flavor::Redshift => ident.to_ascii_lowercase(),
        Flavor::Postgres | Flavor::Sqlite => ident.to_string(),
    }
}

fn now(flavor: Flavor) -> &'static str {
    match flavor {
        // UTC (sqlx sets TimeZone=UTC at connect); Redshift has no now().
        Flavor::Redshift => "GETDATE()",
        Flavor::Postgres | Flavor::Sqlite => "now()",
    }
}

/// Applies the pending migrations of `schema.table` on Postgres or Redshift.
pub(crate) async fn migrate_pg(
    pool: &PgPool,
    flavor: Flavor,
    schema: &str,
    table: &str,
) -> Result<(), Failure> {
    let all = migrations(flavor);
    let mut conn = pool.acquire().await?;
    if flavor == Flavor::Postgres && up_to_date_pg(&mut conn, schema, table, &all).await? {
        return Ok(());
    }
    // Records of a table that no longer exists (dropped) do not count.
    let done = if bookkeeping_exists(&mut conn, flavor, schema).await?
        && table_exists(&mut conn, flavor, schema, table).await?
    {
        applied_pg(&mut conn, schema, table).await?
    } else {
        BTreeSet::new()
    };
    let mut pending = all.iter().any(|m| !done.contains(&m.version));
    if !pending {
        // A side table dropped since: the migration creating it runs again.
        for migration in &all {
            for created in migration.creates() {
                pending |= !table_exists(&mut conn, flavor, schema, created).await?;
            }
        }
    }
    if pending {
        for migration in &all {
            apply_pg(&mut conn, flavor, schema, table, migration).await?;
        }
    }
    check_columns(
        present_columns_pg(&mut conn, flavor, schema, table).await?,
        schema,
        table,
    )?;
    for side in SIDE_TABLES {
        check_side_columns(
            present_columns_pg(&mut conn, flavor, schema, side.name).await?,
            schema,
            &side,
        )?;
    }
    Ok(())
}

/// The check of every run on an up-to-date schema, in one catalog query
/// (a fresh connection's first catalog reads are what cost; four of them
/// took 20–40 ms): every version recorded, the table there with every
/// contract column, and each side table there with all its columns.
/// `false` sends migrate down the full path, which also explains what is
/// wrong (or creates a side table again); so does any error here (no
/// bookkeeping table yet).
async fn up_to_date_pg(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    all: &[Migration],
) -> Result<bool, Failure> {
    let qualified = |name: &str| literal(&format!("{}.{}", quote_ident(schema), quote_ident(name)));
    let columns_of = |name: &str| {
        format!(
            "(SELECT string_agg(attname::text, ',') FROM pg_catalog.pg_attribute \
             WHERE attrelid = to_regclass({}) AND attnum > 0 AND NOT attisdropped)",
            qualified(name)
        )
    };
    let mut tables = vec![columns_of(table)];
    tables.extend(SIDE_TABLES.iter().map(|t| columns_of(t.name)));
    let sql = format!(
        "SELECT (SELECT string_agg(version::text, ',') FROM {}.{} WHERE table_name = {}), {}",
        quote_ident(schema),
        quote_ident(MIGRATIONS_TABLE),
        literal(table),
        tables.join(", "),
    );
    let row = match sqlx::raw_sql(AssertSqlSafe(sql))
        .fetch_one(&mut *conn)
        .await
    {
        Ok(row) => row,
        Err(_) => return Ok(false),
    };
    let mut lists = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        match row.try_get::<Option<String>, _>(i)? {
            Some(list) => lists.push(list),
            // No record, or a table missing.
            None => return Ok(false),
        }
    }
    let set = |list: &str| list.split(',').map(str::to_string).collect::<BTreeSet<_>>();
    let applied = set(&lists[0]);
    let has_all = |list: &str, wanted: &[&str]| {
        let present = set(list);
        wanted.iter().all(|c| present.contains(*c))
    };
    Ok(all.iter().all(|m| applied.contains(&m.version.to_string()))
        && has_all(&lists[1], &COLUMNS)
        && SIDE_TABLES
            .iter()
            .zip(&lists[2..])
            .all(|(t, list)| has_all(list, t.columns)))
}

async fn fetch_strings(conn: &mut PgConnection, sql: String) -> Result<Vec<String>, Failure> {
    let rows = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_all(conn).await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(Failure::Db))
        .collect()
}

async fn exists(conn: &mut PgConnection, sql: String) -> Result<bool, Failure> {
    Ok(!fetch_strings(conn, sql).await?.is_empty())
}

async fn bookkeeping_exists(
    conn: &mut PgConnection,
    flavor: Flavor,
    schema: &str,
) -> Result<bool, Failure> {
    table_exists(conn, flavor, schema, MIGRATIONS_TABLE).await
}

async fn table_exists(
    conn: &mut PgConnection,
    flavor: Flavor,
    schema: &str,
    table: &str,
) -> Result<bool, Failure> {
    exists(
        conn,
        format!(
            "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = {} AND tablename = {}",
            literal(&catalog_name(flavor, schema)),
            literal(&catalog_name(flavor, table)),
        ),
    )
    .await
}

async fn applied_pg(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<BTreeSet<i32>, Failure> {
    let versions = fetch_strings(
        conn,
        format!(
            "SELECT version::text FROM {}.{} WHERE table_name = {}",
            quote_ident(schema),
            quote_ident(MIGRATIONS_TABLE),
            literal(table)
        ),
    )
    .await?;
    versions
        .iter()
        .map(|v| {
            v.parse()
                .map_err(|_| Failure::Data(format!("{MIGRATIONS_TABLE} holds version {v:?}")))
        })
        .collect()
}

/// One version in one transaction: lock, re-read the records, then apply
/// (or adopt) and record, or do nothing when another process got there first.
async fn apply_pg(
    conn: &mut PgConnection,
    flavor: Flavor,
    schema: &str,
    table: &str,
    migration: &Migration,
) -> Result<(), Failure> {
    let mut tx = conn.begin().await?;
    let bookkeeping = format!("{}.{}", quote_ident(schema), quote_ident(MIGRATIONS_TABLE));
    let create_bookkeeping = format!(
        "CREATE TABLE IF NOT EXISTS {bookkeeping} (\
         \"table_name\" VARCHAR(128) NOT NULL, \"version\" INTEGER NOT NULL, \
         \"description\" VARCHAR(256) NOT NULL, \"applied_at\" TIMESTAMPTZ NOT NULL, \
         PRIMARY KEY (\"table_name\", \"version\"))"
    );
    match flavor {
        Flavor::Postgres => {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SELECT pg_advisory_xact_lock(hashtext({}))",
                literal(&format!("mdp-warehouse migrate {schema}"))
            )))
            .execute(&mut *tx)
            .await?;
            // CREATE SCHEMA IF NOT EXISTS checks the CREATE privilege on the
            // database even when the schema exists: only run it when needed.
            let schema_missing = !exists(
                &mut tx,
                format!(
                    "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname = {}",
                    literal(schema)
                ),
            )
            .await?;
            if schema_missing {
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    quote_ident(schema)
                )))
                .execute(&mut *tx)
                .await?;
            }
            if !bookkeeping_exists(&mut tx, flavor, schema).await? {
                sqlx::raw_sql(AssertSqlSafe(create_bookkeeping))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Flavor::Redshift | Flavor::Sqlite => {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {}; {create_bookkeeping}; LOCK {bookkeeping}",
                quote_ident(schema)
            )))
            .execute(&mut *tx)
            .await?;
        }
    }
    let table_there = table_exists(&mut tx, flavor, schema, table).await?;
    if !table_there {
        // The table was dropped (`mdp bench` does): its records are stale.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DELETE FROM {bookkeeping} WHERE \"table_name\" = {}",
            literal(table)
        )))
        .execute(&mut *tx)
        .await?;
    } else if applied_pg(&mut tx, schema, table)
        .await?
        .contains(&migration.version)
    {
        let mut complete = true;
        for created in migration.creates() {
            complete &= table_exists(&mut tx, flavor, schema, created).await?;
        }
        if complete {
            tx.commit().await?;
            return Ok(());
        }
        // A table it created is gone: its record is stale; it runs again.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DELETE FROM {bookkeeping} WHERE \"table_name\" = {} AND \"version\" = {}",
            literal(table),
            migration.version
        )))
        .execute(&mut *tx)
        .await?;
    }
    let adopted = migration.version == 1 && table_there;
    if adopted {
        tracing::info!(
            table = %format!("{schema}.{table}"),
            "the table predates versioned migrations: recording {} as applied",
            migration.file
        );
    } else {
        sqlx::raw_sql(AssertSqlSafe(migration.sql(schema, table)))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::raw_sql(AssertSqlSafe(format!(
        "INSERT INTO {bookkeeping} (\"table_name\", \"version\", \"description\", \"applied_at\") \
         VALUES ({}, {}, {}, {})",
        literal(table),
        migration.version,
        literal(&description(migration, adopted)),
        now(flavor)
    )))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        table = %format!("{schema}.{table}"),
        version = migration.version,
        "applied migration {}",
        migration.file
    );
    Ok(())
}

fn description(migration: &Migration, adopted: bool) -> String {
    if adopted {
        format!(
            "{} (table existed: recorded, not run)",
            migration.description
        )
    } else {
        migration.description.to_string()
    }
}

async fn present_columns_pg(
    conn: &mut PgConnection,
    flavor: Flavor,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, Failure> {
    fetch_strings(
        conn,
        format!(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = {} AND table_name = {}",
            literal(&catalog_name(flavor, schema)),
            literal(&catalog_name(flavor, table)),
        ),
    )
    .await
}

/// Every contract column must be there (extra columns, like the Airflow
/// table's `id`, are fine: loads name their columns).
fn check_columns(present: Vec<String>, schema: &str, table: &str) -> Result<(), Failure> {
    let missing: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| !present.iter().any(|p| p == c))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::Data(format!(
            "table {schema}.{table} has no column {} after migrating: it is not a market-data \
             table the migrations can adopt",
            missing.join(", ")
        )))
    }
}

/// Every column of a side table must be there; a side table with no
/// column at all is missing.
fn check_side_columns(present: Vec<String>, schema: &str, side: &SideTable) -> Result<(), Failure> {
    if present.is_empty() {
        return Err(Failure::Data(format!(
            "table {schema}.{} is missing after migrating",
            side.name
        )));
    }
    let missing: Vec<&str> = side
        .columns
        .iter()
        .copied()
        .filter(|c| !present.iter().any(|p| p == c))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::Data(format!(
            "table {schema}.{} has no column {} after migrating",
            side.name,
            missing.join(", ")
        )))
    }
}

/// Applies the pending migrations of `table` on SQLite.
pub(crate) async fn migrate_sqlite(pool: &SqlitePool, table: &str) -> Result<(), Failure> {
    let all = migrations(WarehouseKind::Sqlite);
    let mut conn = pool.acquire().await?;
    // Records of a table that no longer exists (dropped) do not count.
    let done = if sqlite_table_exists(&mut conn, MIGRATIONS_TABLE).await?
        && sqlite_table_exists(&mut conn, table).await?
    {
        applied_sqlite(&mut conn, table).await?
    } else {
        BTreeSet::new()
    };
    let mut pending = all.iter().any(|m| !done.contains(&m.version));
    if !pending {
        // A side table dropped since: the migration creating it runs again.
        for migration in &all {
            for created in migration.creates() {
                pending |= !sqlite_table_exists(&mut conn, created).await?;
            }
        }
    }
    if pending {
        for migration in &all {
            apply_sqlite(&mut conn, table, migration).await?;
        }
    }
    check_columns(sqlite_columns(&mut conn, table).await?, "main", table)?;
    for side in SIDE_TABLES {
        check_side_columns(sqlite_columns(&mut conn, side.name).await?, "main", &side)?;
    }
    Ok(())
}

async fn sqlite_columns(conn: &mut SqliteConnection, table: &str) -> Result<Vec<String>, Failure> {
    Ok(
        sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
            .bind(table)
            .fetch_all(conn)
            .await?,
    )
}

async fn sqlite_table_exists(conn: &mut SqliteConnection, table: &str) -> Result<bool, Failure> {
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(table)
            .fetch_one(conn)
            .await?;
    Ok(n > 0)
}

async fn applied_sqlite(
    conn: &mut SqliteConnection,
    table: &str,
) -> Result<BTreeSet<i32>, Failure> {
    let versions: Vec<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM {} WHERE table_name = ?",
        quote_ident(MIGRATIONS_TABLE)
    )))
    .bind(table)
    .fetch_all(conn)
    .await?;
    Ok(versions.into_iter().collect())
}

async fn apply_sqlite(
    conn: &mut SqliteConnection,
    table: &str,
    migration: &Migration,
) -> Result<(), Failure> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {} (\
         \"table_name\" TEXT NOT NULL, \"version\" INTEGER NOT NULL, \
         \"description\" TEXT NOT NULL, \"applied_at\" TEXT NOT NULL, \
         PRIMARY KEY (\"table_name\", \"version\"))",
        quote_ident(MIGRATIONS_TABLE)
    )))
    .execute(&mut *tx)
    .await?;
    let table_there = sqlite_table_exists(&mut tx, table).await?;
    if !table_there {
        // The table was dropped (`mdp bench` does): its records are stale.
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE \"table_name\" = ?",
            quote_ident(MIGRATIONS_TABLE)
        )))
        .bind(table)
        .execute(&mut *tx)
        .await?;
    } else if applied_sqlite(&mut tx, table)
        .await?
        .contains(&migration.version)
    {
        let mut complete = true;
        for created in migration.creates() {
            complete &= sqlite_table_exists(&mut tx, created).await?;
        }
        if complete {
            tx.commit().await?;
            return Ok(());
        }
        // A table it created is gone: its record is stale; it runs again.
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE \"table_name\" = ? AND \"version\" = ?",
            quote_ident(MIGRATIONS_TABLE)
        )))
        .bind(table)
        .bind(migration.version)
        .execute(&mut *tx)
        .await?;
    }
    let adopted = migration.version == 1 && table_there;
    if !adopted {
        sqlx::raw_sql(AssertSqlSafe(migration.sql("main", table)))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (\"table_name\", \"version\", \"description\", \"applied_at\") \
         VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        quote_ident(MIGRATIONS_TABLE)
    )))
    .bind(table)
    .bind(migration.version)
    .bind(description(migration, adopted))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        table,
        version = migration.version,
        "applied migration {}",
        migration.file
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(literal("plain"), "'plain'");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn missing_contract_columns_are_named() {
        let mut present: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
        present.push("id".into());
        assert!(check_columns(present.clone(), "s", "t").is_ok());
        present.retain(|c| c != "adj_close" && c != "rsi");
        match check_columns(present, "s", "t") {
            Err(Failure::Data(why)) => {
                assert!(why.contains("s.t has no column adj_close, rsi"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
}
