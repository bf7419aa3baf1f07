//! Configuration from the environment (DESIGN.md section 7, contract), read
//! and checked once at start. A bad value is one error line naming the
//! variable and what it accepts.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::ticker::{Ticker, normalise_tickers};

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

/// The warehouse kind, from the scheme of `WAREHOUSE_URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarehouseKind {
    Sqlite,
    Postgres,
    Redshift,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub default_tickers: Vec<Ticker>,
    pub api_base_url: String,
    pub api_timeout: Duration,
    pub max_retries: u32,
    pub retry_delay: Duration,
    pub backfill_days: u32,
    pub lake_uri: LakeUri,
    pub parquet_compression: ParquetCompression,
    pub warehouse_url: String,
    pub warehouse_kind: WarehouseKind,
    pub warehouse_schema: String,
    pub warehouse_table: String,
    pub load_strategy: LoadStrategy,
    pub batch_size: usize,
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

        let lake_raw = parsed("MARKET_DATA_LAKE_URI", DEFAULT_LAKE_URI)?;
        let lake_uri = lake_raw
            .parse::<LakeUri>()
            .map_err(|why| fail("MARKET_DATA_LAKE_URI", &lake_raw, &why))?;

        let compression_raw = parsed("PARQUET_COMPRESSION", "snappy")?;
        let parquet_compression = compression_raw
            .parse()
            .map_err(|why: String| fail("PARQUET_COMPRESSION", &compression_raw, &why))?;

        let warehouse_url = parsed("WAREHOUSE_URL", DEFAULT_WAREHOUSE_URL)?;
        let warehouse_kind = warehouse_kind(&warehouse_url).ok_or_else(|| {
            fail(
                "WAREHOUSE_URL",
                &redact_url(&warehouse_url),
                "sqlite://PATH, postgres://… or redshift://…",
            )
        })?;

        let ident = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let v = parsed(name, default)?;
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
        let warehouse_schema = ident("WAREHOUSE_SCHEMA", "public")?;
        let warehouse_table = ident("WAREHOUSE_TABLE_MARKET_DATA", "fact_market_data")?;

        let strategy_raw = parsed("WAREHOUSE_LOAD_STRATEGY", "upsert")?;
        let load_strategy = strategy_raw
            .parse()
            .map_err(|why: String| fail("WAREHOUSE_LOAD_STRATEGY", &strategy_raw, &why))?;
        let batch_size = integer("WAREHOUSE_BATCH_SIZE", 1000, 1, 1_000_000)? as usize;
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
            backfill_days,
            lake_uri,
            parquet_compression,
            warehouse_url,
            warehouse_kind,
            warehouse_schema,
            warehouse_table,
            load_strategy,
            batch_size,
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
    /// The same configuration with another warehouse URL (read from a secret
    /// at cold start). The URL is checked like `WAREHOUSE_URL`.
    pub fn with_warehouse_url(&self, url: String) -> Result<Config, ConfigError> {
        let kind = warehouse_kind(&url).ok_or_else(|| ConfigError {
            variable: "WAREHOUSE_SECRET_ARN",
            value: redact_url(&url),
            expected: "a secret naming a postgres or redshift warehouse".into(),
        })?;
        check_redshift_iam_role(kind, &self.warehouse_redshift_iam_role)?;
        Ok(Config {
            warehouse_url: url,
            warehouse_kind: kind,
            ..self.clone()
        })
    }
}

/// A ticker list as CSV (`AAPL,MSFT`) or a JSON array (`["AAPL","MSFT"]`).
/// Any invalid entry makes the whole list invalid: this is configuration.
pub fn parse_ticker_list(raw: &str) -> Result<Vec<Ticker>, String> {
    let items: Vec<String> = if raw.trim_start().starts_with('[') {
        serde_json::from_str(raw).map_err(|e| format!("a JSON list of ticker strings ({e})"))?
    } else {
        raw.split(',')
            .map(str::to_string)
            .filter(|s| !s.trim().is_empty())
            .collect()
    };
    let (tickers, errors) = normalise_tickers(&items);
    if let Some(first) = errors.first() {
        return Err(format!("{first}"));
    }
    if tickers.is_empty() {
        return Err("at least one ticker, as CSV (AAPL,MSFT) or a JSON list".into());
    }
    Ok(tickers)
}

const REDSHIFT_IAM_ROLE_VARIABLE: &str = "WAREHOUSE_REDSHIFT_IAM_ROLE";
const REDSHIFT_IAM_ROLE_EXPECTED: &str = "an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME, or a comma-separated chain of them) or `default`";

/// A Redshift warehouse loads with `COPY … IAM_ROLE '…'`: the role is required.
fn check_redshift_iam_role(kind: WarehouseKind, role: &Option<String>) -> Result<(), ConfigError> {
    if kind == WarehouseKind::Redshift && role.is_none() {
        return Err(ConfigError {
            variable: REDSHIFT_IAM_ROLE_VARIABLE,
            value: String::new(),
            expected: format!(
                "required for a redshift warehouse (COPY from S3 assumes it): {REDSHIFT_IAM_ROLE_EXPECTED}"
            ),
        });
    }
    Ok(())
}

/// `default`, or ARNs of IAM roles, comma-separated (a role chain). The value
/// ends up inside a SQL string literal: no quotes, backslashes or spaces.
fn is_redshift_iam_role(role: &str) -> bool {
    role.eq_ignore_ascii_case("default")
        || role.split(',').all(|arn| {
            arn.starts_with("arn:")
                && arn.contains(":iam::")
                && arn.contains(":role/")
                && arn
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"'\\\"".contains(&b))
        })
}

fn warehouse_kind(url: &str) -> Option<WarehouseKind> {
    let (scheme, rest) = url.split_once("://")?;
    if rest.is_empty() {
        return None;
    }
    match scheme {
        "sqlite" => Some(WarehouseKind::Sqlite),
        "postgres" | "postgresql" => Some(WarehouseKind::Postgres),
        "redshift" => Some(WarehouseKind::Redshift),
        _ => None,
    }
}

fn is_sql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

/// The URL with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            // Query-string passwords (`?password=`) are masked too.
            let tail = mask_query_password(tail);
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{}", mask_query_password(tail)),
    }
}

fn mask_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", masked.join("&"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_design() {
        let c = config(&[]).unwrap();
        assert_eq!(c.default_tickers, [Ticker::parse("AAPL").unwrap()]);
        assert_eq!(c.api_base_url, DEFAULT_API_BASE_URL);
        assert_eq!(c.api_timeout, Duration::from_secs(30));
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.retry_delay, Duration::from_secs(5));
        assert_eq!(c.backfill_days, 120);
        assert_eq!(c.lake_uri, LakeUri::File(PathBuf::from("./data")));
        assert_eq!(c.parquet_compression, ParquetCompression::Snappy);
        assert_eq!(c.warehouse_url, DEFAULT_WAREHOUSE_URL);
        assert_eq!(c.warehouse_kind, WarehouseKind::Sqlite);
        assert_eq!(
            (c.warehouse_schema.as_str(), c.warehouse_table.as_str()),
            ("public", "fact_market_data")
        );
        assert_eq!(c.load_strategy, LoadStrategy::Upsert);
        assert_eq!(c.batch_size, 1000);
        assert_eq!(c.aws_endpoint_url, None);
    }

    #[test]
    fn values_are_parsed() {
        let c = config(&[
            ("MARKET_DATA_DEFAULT_TICKERS", r#"["msft", "^gspc"]"#),
            ("MARKET_DATA_RETRY_DELAY", "0.25"),
            ("MARKET_DATA_LAKE_URI", "s3://bucket/some/prefix/"),
            ("PARQUET_COMPRESSION", "ZSTD"),
            ("WAREHOUSE_URL", "postgres://u:secret@db:5432/x"),
            ("WAREHOUSE_LOAD_STRATEGY", "truncate_insert"),
            ("WAREHOUSE_BATCH_SIZE", "50"),
        ])
        .unwrap();
        let names: Vec<&str> = c.default_tickers.iter().map(Ticker::as_str).collect();
        assert_eq!(names, ["MSFT", "^GSPC"]);
        assert_eq!(c.retry_delay, Duration::from_millis(250));
        assert_eq!(
            c.lake_uri,
            LakeUri::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(c.parquet_compression, ParquetCompression::Zstd);
        assert_eq!(c.warehouse_kind, WarehouseKind::Postgres);
        assert_eq!(c.load_strategy, LoadStrategy::TruncateInsert);
        assert_eq!(c.batch_size, 50);
        let csv = config(&[("MARKET_DATA_DEFAULT_TICKERS", "aapl, msft,AAPL")]).unwrap();
        assert_eq!(csv.default_tickers.len(), 2);
    }

    #[test]
    fn bad_values_name_the_variable_and_what_is_accepted() {
        let cases = [
            (
                "MARKET_DATA_DEFAULT_TICKERS",
                "AAPL,NOT VALID",
                "invalid ticker",
            ),
            ("MARKET_DATA_API_TIMEOUT", "soon", "number of seconds"),
            ("MARKET_DATA_API_TIMEOUT", "0", "more than zero"),
            ("MARKET_DATA_MAX_RETRIES", "-1", "whole number from 0 to 20"),
            ("MARKET_DATA_RETRY_DELAY", "NaN", "number of seconds"),
            ("MARKET_DATA_BACKFILL_DAYS", "0", "whole number from 1"),
            ("MARKET_DATA_LAKE_URI", "/tmp/lake", "file://PATH or s3://"),
            ("PARQUET_COMPRESSION", "lz4", "snappy, zstd, gzip, none"),
            ("WAREHOUSE_URL", "mysql://x", "sqlite://PATH"),
            ("WAREHOUSE_SCHEMA", "public; drop table x", "SQL identifier"),
            ("WAREHOUSE_TABLE_MARKET_DATA", "1table", "SQL identifier"),
            (
                "WAREHOUSE_LOAD_STRATEGY",
                "merge",
                "upsert, append, truncate_insert",
            ),
            ("WAREHOUSE_BATCH_SIZE", "0", "whole number from 1"),
            ("WAREHOUSE_POOL_SIZE", "0", "whole number from 1 to 100"),
            ("YAHOO_FINANCE_API_BASE_URL", "ftp://x", "http"),
            ("AWS_ENDPOINT_URL", "localhost:5000", "http"),
        ];
        for (var, value, needle) in cases {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
            let line = err.to_string();
            assert!(line.contains(var) && line.contains(needle), "{line}");
            assert!(!line.contains('\n'));
        }
    }

    #[test]
    fn redshift_needs_an_iam_role_for_copy() {
        let err =
            config(&[("WAREHOUSE_URL", "redshift://u:hunter2@cluster:5439/dev")]).unwrap_err();
        assert_eq!(err.variable, "WAREHOUSE_REDSHIFT_IAM_ROLE");
        let line = err.to_string();
        assert!(
            line.contains("WAREHOUSE_REDSHIFT_IAM_ROLE")
                && line.contains("required for a redshift warehouse"),
            "{line}"
        );
        assert!(!line.contains("hunter2") && !line.contains('\n'), "{line}");

        let role = "arn:aws:iam::123456789012:role/mdp-copy";
        let c = config(&[
            ("WAREHOUSE_URL", "redshift://u:p@cluster:5439/dev"),
            ("WAREHOUSE_REDSHIFT_IAM_ROLE", role),
        ])
        .unwrap();
        assert_eq!(c.warehouse_kind, WarehouseKind::Redshift);
        assert_eq!(c.warehouse_redshift_iam_role.as_deref(), Some(role));
        let chain = "arn:aws:iam::1:role/a,arn:aws-cn:iam::2:role/b";
        for ok in ["default", "DEFAULT", chain] {
            let c = config(&[("WAREHOUSE_REDSHIFT_IAM_ROLE", ok)]).unwrap();
            assert_eq!(c.warehouse_redshift_iam_role.as_deref(), Some(ok));
        }
        // Not needed (and unset by default) for other warehouses.
        assert_eq!(config(&[]).unwrap().warehouse_redshift_iam_role, None);
        for bad in [
            "mdp-copy",
            "arn:aws:iam::1:role/x'; drop",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::1:role/a b",
        ] {
            let err = config(&[("WAREHOUSE_REDSHIFT_IAM_ROLE", bad)]).unwrap_err();
            assert_eq!(err.variable, "WAREHOUSE_REDSHIFT_IAM_ROLE", "{bad}");
            assert!(err.to_string().contains("IAM role ARN"), "{err}");
        }
    }

    #[test]
    fn a_secret_switching_to_redshift_needs_the_iam_role_too() {
        let c = config(&[("WAREHOUSE_URL", "postgres://u@db/x")]).unwrap();
        let err = c
            .with_warehouse_url("redshift://u:hunter2@cluster:5439/dev".into())
            .unwrap_err();
        assert_eq!(err.variable, "WAREHOUSE_REDSHIFT_IAM_ROLE");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let c = config(&[("WAREHOUSE_REDSHIFT_IAM_ROLE", "default")]).unwrap();
        let rs = c
            .with_warehouse_url("redshift://u:p@cluster:5439/dev".into())
            .unwrap();
        assert_eq!(rs.warehouse_kind, WarehouseKind::Redshift);
    }

    #[test]
    fn warehouse_password_is_not_repeated_in_errors() {
        let err = config(&[("WAREHOUSE_URL", "mysql://user:hunter2@host/db")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/d?sslmode=require"),
            "postgres://u:***@h:5432/d?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://h/d?user=u&password=pw"),
            "postgres://h/d?user=u&password=***"
        );
        assert_eq!(redact_url("sqlite://./data/w.db"), "sqlite://./data/w.db");
    }
}
