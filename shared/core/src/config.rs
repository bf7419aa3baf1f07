//! Configuration from the environment (DESIGN.md section 7, contract), read
//! and checked once at start. A bad value is one error line naming the
//! variable and what it accepts.
//!
//! This file is the [`Config`] struct and its reading ([`Config::from_lookup`]);
//! the checks of single values (ticker list, Redshift role, SQL identifier),
//! the warehouse error mapping and the redacting `Debug` are in `parse`, to
//! keep it readable.

mod parse;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::connection::{AirflowWarehouse, TlsEnv, WarehouseConnection};
pub use crate::connection::{WarehouseKind, redact_url};
use crate::ticker::Ticker;
pub use parse::parse_ticker_list;
use parse::{
    REDSHIFT_IAM_ROLE_EXPECTED, REDSHIFT_IAM_ROLE_VARIABLE, check_redshift_iam_role,
    is_redshift_iam_role, is_sql_identifier, warehouse_error,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: String,
}

/// Where the lake lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeUri {
    File(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl fmt::Display for LakeUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeUri::File(p) => write!(f, "file://{}", p.display()),
            LakeUri::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl FromStr for LakeUri {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("file://") {
            if path.is_empty() {
                return Err("file:// needs a path, e.g. file://./data".into());
            }
            Ok(LakeUri::File(PathBuf::from(path)))
        } else if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// needs a bucket, e.g. s3://my-bucket/lake".into());
            }
            Ok(LakeUri::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            })
        } else {
            Err("expected file://PATH or s3://BUCKET/PREFIX".into())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCompression {
    Snappy,
    Zstd,
    Gzip,
    None,
}

impl FromStr for ParquetCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "snappy" => Ok(Self::Snappy),
            "zstd" => Ok(Self::Zstd),
            "gzip" => Ok(Self::Gzip),
            "none" | "uncompressed" => Ok(Self::None),
            _ => Err("expected one of snappy, zstd, gzip, none".into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStrategy {
    /// Insert new (ticker, date), update existing ones whose values changed.
    Upsert,
    /// Insert only; an existing (ticker, date) is skipped, never duplicated.
    Append,
    /// Replace all of the ticker's rows with its whole curated history.
    TruncateInsert,
}

impl FromStr for LoadStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "upsert" => Ok(Self::Upsert),
            "append" => Ok(Self::Append),
            "truncate_insert" => Ok(Self::TruncateInsert),
            _ => Err("expected one of upsert, append, truncate_insert".into()),
        }
    }
}

impl fmt::Display for LoadStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Upsert => "upsert",
            Self::Append => "append",
            Self::TruncateInsert => "truncate_insert",
        })
    }
}

#[derive(Clone, PartialEq)]
pub struct Config {
    pub default_tickers: Vec<Ticker>,
    pub api_base_url: String,
    pub api_timeout: Duration,
    pub max_retries: u32,
    pub retry_delay: Duration,
    /// Largest chart response body read, in bytes (`MARKET_DATA_MAX_RESPONSE_BYTES`).
    pub max_response_bytes: u64,
    /// Most chart requests in flight at once in one process
    /// (`MARKET_DATA_API_CONCURRENCY`), retries included.
    pub api_concurrency: usize,
    /// Most chart requests started per second in one process
    /// (`MARKET_DATA_API_RATE`); `None`: no rate limit.
    pub api_rate: Option<f64>,
    pub backfill_days: u32,
    pub lake_uri: LakeUri,
    pub parquet_compression: ParquetCompression,
    /// `WAREHOUSE_URL` as written, or the URL of the Airflow settings or of
    /// the default. It holds the password: log [`redact_url`] of it, or
    /// [`WarehouseConnection::redacted`].
    pub warehouse_url: String,
    pub warehouse_kind: WarehouseKind,
    /// The warehouse connection, parsed once: from `WAREHOUSE_URL`, else the
    /// Airflow settings (`ENVIRONMENT` and `{DEV,STAGING,PROD}_WAREHOUSE_*`),
    /// else `sqlite://./data/warehouse.db`.
    pub warehouse: WarehouseConnection,
    /// `PGSSLMODE` and `WAREHOUSE_SSL_ROOT_CERT`, kept for a connection read
    /// later from a secret.
    pub warehouse_tls_env: TlsEnv,
    /// `*_WAREHOUSE_REGION` of the Airflow settings, for information.
    pub warehouse_region: Option<String>,
    pub warehouse_schema: String,
    pub warehouse_table: String,
    pub load_strategy: LoadStrategy,
    pub batch_size: usize,
    /// Postgres loads of at most this many rows bind them to the statement
    /// instead of COPYing them into a staging table (0: always COPY).
    pub direct_load_max_rows: usize,
    /// Connections in the warehouse pool of one process (one warm function).
    pub warehouse_pool_size: u32,
    /// Secrets Manager secret holding the warehouse connection (in AWS).
    pub warehouse_secret_arn: Option<String>,
    /// IAM role Redshift assumes to `COPY` the curated Parquet from S3
    /// (`WAREHOUSE_REDSHIFT_IAM_ROLE`): an ARN (or comma-separated chain of
    /// ARNs), or `default` for the cluster's default role. Required when the
    /// warehouse is Redshift.
    pub warehouse_redshift_iam_role: Option<String>,
    pub fetch_queue_url: Option<String>,
    pub transform_queue_url: Option<String>,
    pub load_queue_url: Option<String>,
    pub fetch_dlq_url: Option<String>,
    pub transform_dlq_url: Option<String>,
    pub load_dlq_url: Option<String>,
    pub aws_endpoint_url: Option<String>,
}

pub const DEFAULT_API_BASE_URL: &str = "https://query2.finance.yahoo.com/v8/finance/chart";
pub const DEFAULT_LAKE_URI: &str = "file://./data";
pub const DEFAULT_WAREHOUSE_URL: &str = "sqlite://./data/warehouse.db";
/// `MARKET_DATA_MAX_RESPONSE_BYTES` by default: 32 MiB, far above any daily
/// chart (20 years of bars are about 1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;
/// The accepted range of `MARKET_DATA_MAX_RESPONSE_BYTES`.
pub const MAX_RESPONSE_BYTES_RANGE: (u64, u64) = (1024, 1024 * 1024 * 1024);
/// `MARKET_DATA_API_CONCURRENCY` by default: the original's API pool of 5.
pub const DEFAULT_API_CONCURRENCY: usize = 5;
/// The accepted range of `MARKET_DATA_API_RATE`, requests per second.
pub const API_RATE_RANGE: (f64, f64) = (0.0001, 1000.0);

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (the environment, or a map in tests).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let fail = |variable: &'static str, value: &str, expected: &str| ConfigError {
            variable,
            value: value.to_string(),
            expected: expected.to_string(),
        };

        let tickers_raw = get("MARKET_DATA_DEFAULT_TICKERS").unwrap_or_else(|| "AAPL".into());
        let default_tickers = parse_ticker_list(&tickers_raw)
            .map_err(|why| fail("MARKET_DATA_DEFAULT_TICKERS", &tickers_raw, &why))?;

        let api_base_url =
            get("YAHOO_FINANCE_API_BASE_URL").unwrap_or_else(|| DEFAULT_API_BASE_URL.into());
        if !(api_base_url.starts_with("http://") || api_base_url.starts_with("https://")) {
            return Err(fail(
                "YAHOO_FINANCE_API_BASE_URL",
                &api_base_url,
                "an http:// or https:// URL",
            ));
        }
        let api_base_url = api_base_url.trim_end_matches('/').to_string();

        let seconds = |name: &'static str,
                       default: f64,
                       allow_zero: bool|
         -> Result<Duration, ConfigError> {
            match get(name) {
                None => Ok(Duration::from_secs_f64(default)),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| {
                        s.is_finite() && (*s > 0.0 || (allow_zero && *s == 0.0)) && *s <= 86_400.0
                    })
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        let what = if allow_zero {
                            "zero or more"
                        } else {
                            "more than zero"
                        };
                        fail(
                            name,
                            &v,
                            &format!("a number of seconds, {what}, at most 86400"),
                        )
                    }),
            }
        };
        let integer =
            |name: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
                match get(name) {
                    None => Ok(default),
                    Some(v) => v
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (min..=max).contains(n))
                        .ok_or_else(|| {
                            fail(name, &v, &format!("a whole number from {min} to {max}"))
                        }),
                }
            };
        let parsed = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            Ok(get(name).unwrap_or_else(|| default.to_string()))
        };

        let api_timeout = seconds("MARKET_DATA_API_TIMEOUT", 30.0, false)?;
        let max_retries = integer("MARKET_DATA_MAX_RETRIES", 3, 0, 20)? as u32;
        let retry_delay = seconds("MARKET_DATA_RETRY_DELAY", 5.0, true)?;
        let backfill_days = integer("MARKET_DATA_BACKFILL_DAYS", 120, 1, 36_600)? as u32;
        let (min_bytes, max_bytes) = MAX_RESPONSE_BYTES_RANGE;
        let max_response_bytes = integer(
            "MARKET_DATA_MAX_RESPONSE_BYTES",
            DEFAULT_MAX_RESPONSE_BYTES,
            min_bytes,
            max_bytes,
        )?;
        let api_concurrency = integer(
            "MARKET_DATA_API_CONCURRENCY",
            DEFAULT_API_CONCURRENCY as u64,
            1,
            100,
        )? as usize;
        let api_rate = match get("MARKET_DATA_API_RATE") {
            None => None,
            Some(v) => {
                let (min, max) = API_RATE_RANGE;
                let rate = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && (min..=max).contains(r))
                    .ok_or_else(|| {
                        fail(
                            "MARKET_DATA_API_RATE",
                            &v,
                            &format!(
                                "a number of requests per second, more than zero (fractions allowed, at least {min}), at most {max}"
                            ),
                        )
                    })?;
                Some(rate)
            }
        };

        let lake_raw = parsed("MARKET_DATA_LAKE_URI", DEFAULT_LAKE_URI)?;
        let lake_uri = lake_raw
            .parse::<LakeUri>()
            .map_err(|why| fail("MARKET_DATA_LAKE_URI", &lake_raw, &why))?;

        let compression_raw = parsed("PARQUET_COMPRESSION", "snappy")?;
        let parquet_compression = compression_raw
            .parse()
            .map_err(|why: String| fail("PARQUET_COMPRESSION", &compression_raw, &why))?;

        let warehouse_tls_env = TlsEnv::from_lookup(&lookup);
        let (warehouse, warehouse_url, airflow) = match get("WAREHOUSE_URL") {
            Some(url) => {
                let connection = WarehouseConnection::parse_with(&url, &warehouse_tls_env)
                    .map_err(|e| warehouse_error("WAREHOUSE_URL", &url, e))?;
                (connection, url, None)
            }
            None => match AirflowWarehouse::from_lookup(&lookup)
                .map_err(|e| warehouse_error("ENVIRONMENT", "", e))?
            {
                Some(airflow) => {
                    let url = airflow.connection.to_url();
                    (airflow.connection.clone(), url, Some(airflow))
                }
                None => (
                    WarehouseConnection::parse_with(DEFAULT_WAREHOUSE_URL, &warehouse_tls_env)
                        .map_err(|e| warehouse_error("WAREHOUSE_URL", DEFAULT_WAREHOUSE_URL, e))?,
                    DEFAULT_WAREHOUSE_URL.to_string(),
                    None,
                ),
            },
        };
        let warehouse_kind = warehouse.kind();

        let check_ident = |name: &'static str, v: String| -> Result<String, ConfigError> {
            if is_sql_identifier(&v) {
                Ok(v)
            } else {
                Err(fail(
                    name,
                    &v,
                    "a plain SQL identifier: a letter or _, then letters, digits or _ (at most 63)",
                ))
            }
        };
        let ident = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            check_ident(name, parsed(name, default)?)
        };
        // WAREHOUSE_SCHEMA wins over the Airflow settings' schema.
        let warehouse_schema = match &airflow {
            Some(AirflowWarehouse {
                environment,
                schema: Some(schema),
                ..
            }) if get("WAREHOUSE_SCHEMA").is_none() => {
                check_ident(environment.variables().schema, schema.clone())?
            }
            _ => ident("WAREHOUSE_SCHEMA", "public")?,
        };
        let warehouse_region = airflow.and_then(|a| a.region);
        let warehouse_table = ident("WAREHOUSE_TABLE_MARKET_DATA", "fact_market_data")?;

        let strategy_raw = parsed("WAREHOUSE_LOAD_STRATEGY", "upsert")?;
        let load_strategy = strategy_raw
            .parse()
            .map_err(|why: String| fail("WAREHOUSE_LOAD_STRATEGY", &strategy_raw, &why))?;
        let batch_size = integer("WAREHOUSE_BATCH_SIZE", 1000, 1, 1_000_000)? as usize;
        let direct_load_max_rows =
            integer("WAREHOUSE_DIRECT_LOAD_MAX_ROWS", 1000, 0, 100_000)? as usize;
        let warehouse_pool_size = integer("WAREHOUSE_POOL_SIZE", 4, 1, 100)? as u32;

        let warehouse_redshift_iam_role = get(REDSHIFT_IAM_ROLE_VARIABLE);
        if let Some(role) = &warehouse_redshift_iam_role
            && !is_redshift_iam_role(role)
        {
            return Err(fail(
                REDSHIFT_IAM_ROLE_VARIABLE,
                role,
                REDSHIFT_IAM_ROLE_EXPECTED,
            ));
        }
        check_redshift_iam_role(warehouse_kind, &warehouse_redshift_iam_role)?;

        let aws_endpoint_url = get("AWS_ENDPOINT_URL");
        if let Some(url) = &aws_endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(fail("AWS_ENDPOINT_URL", url, "an http:// or https:// URL"));
        }

        Ok(Config {
            default_tickers,
            api_base_url,
            api_timeout,
            max_retries,
            retry_delay,
            max_response_bytes,
            api_concurrency,
            api_rate,
            backfill_days,
            lake_uri,
            parquet_compression,
            warehouse_url,
            warehouse_kind,
            warehouse,
            warehouse_tls_env,
            warehouse_region,
            warehouse_schema,
            warehouse_table,
            load_strategy,
            batch_size,
            direct_load_max_rows,
            warehouse_pool_size,
            warehouse_secret_arn: get("WAREHOUSE_SECRET_ARN"),
            warehouse_redshift_iam_role,
            fetch_queue_url: get("FETCH_QUEUE_URL"),
            transform_queue_url: get("TRANSFORM_QUEUE_URL"),
            load_queue_url: get("LOAD_QUEUE_URL"),
            fetch_dlq_url: get("FETCH_DLQ_URL"),
            transform_dlq_url: get("TRANSFORM_DLQ_URL"),
            load_dlq_url: get("LOAD_DLQ_URL"),
            aws_endpoint_url,
        })
    }
}

impl Config {
    /// The same configuration with another warehouse (read from a secret at
    /// cold start); `warehouse_url` becomes its [`WarehouseConnection::to_url`].
    pub fn with_warehouse(&self, warehouse: WarehouseConnection) -> Result<Config, ConfigError> {
        check_redshift_iam_role(warehouse.kind(), &self.warehouse_redshift_iam_role)?;
        Ok(Config {
            warehouse_url: warehouse.to_url(),
            warehouse_kind: warehouse.kind(),
            warehouse,
            ..self.clone()
        })
    }

    /// The same configuration with another warehouse URL (read from a secret
    /// at cold start). The URL is checked like `WAREHOUSE_URL`, with the
    /// environment's `PGSSLMODE` and `WAREHOUSE_SSL_ROOT_CERT`.
    pub fn with_warehouse_url(&self, url: String) -> Result<Config, ConfigError> {
        let warehouse =
            WarehouseConnection::parse_with(&url, &self.warehouse_tls_env).map_err(|e| {
                match warehouse_error("WAREHOUSE_SECRET_ARN", &url, e) {
                    ConfigError {
                        variable: "WAREHOUSE_SECRET_ARN",
                        value,
                        expected,
                    } => ConfigError {
                        variable: "WAREHOUSE_SECRET_ARN",
                        value,
                        expected: format!(
                            "a secret naming a postgres or redshift warehouse: {expected}"
                        ),
                    },
                    other => other,
                }
            })?;
        Ok(Config {
            warehouse_url: url,
            ..self.with_warehouse(warehouse)?
        })
    }
}
