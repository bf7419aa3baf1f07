//! The value checks of [`Config::from_lookup`](super::Config::from_lookup):
//! the ticker list ([`parse_ticker_list`], public: the CLI reads ticker
//! arguments with it), the Redshift IAM role, SQL identifiers, warehouse
//! connection errors as configuration errors, and `Config`'s `Debug`, which
//! redacts the warehouse URL. Apart from config.rs so that file stays the
//! struct and its reading.

use std::fmt;

use super::{Config, ConfigError};
use crate::connection::{ConnectionError, WarehouseKind, redact_url};
use crate::ticker::{Ticker, normalise_tickers};

/// A warehouse connection error as a configuration error: naming the
/// variable at fault (`url_variable` unless the error names another), with
/// the URL redacted.
pub(super) fn warehouse_error(
    url_variable: &'static str,
    url: &str,
    err: ConnectionError,
) -> ConfigError {
    match err {
        ConnectionError::Setting {
            variable,
            value,
            expected,
        } => ConfigError {
            variable,
            value,
            expected,
        },
        other => ConfigError {
            variable: url_variable,
            value: redact_url(url),
            expected: other.to_string(),
        },
    }
}

/// Like the derived `Debug`, with the warehouse URL redacted (the
/// connection's own `Debug` hides its password).
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every field named: a new one cannot be forgotten here.
        let Config {
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
            warehouse_secret_arn,
            warehouse_redshift_iam_role,
            fetch_queue_url,
            transform_queue_url,
            load_queue_url,
            fetch_dlq_url,
            transform_dlq_url,
            load_dlq_url,
            aws_endpoint_url,
        } = self;
        f.debug_struct("Config")
            .field("default_tickers", default_tickers)
            .field("api_base_url", api_base_url)
            .field("api_timeout", api_timeout)
            .field("max_retries", max_retries)
            .field("retry_delay", retry_delay)
            .field("max_response_bytes", max_response_bytes)
            .field("api_concurrency", api_concurrency)
            .field("api_rate", api_rate)
            .field("backfill_days", backfill_days)
            .field("lake_uri", lake_uri)
            .field("parquet_compression", parquet_compression)
            .field(
                "warehouse_url",
                &warehouse.scrub(&redact_url(warehouse_url)),
            )
            .field("warehouse_kind", warehouse_kind)
            .field("warehouse", warehouse)
            .field("warehouse_tls_env", warehouse_tls_env)
            .field("warehouse_region", warehouse_region)
            .field("warehouse_schema", warehouse_schema)
            .field("warehouse_table", warehouse_table)
            .field("load_strategy", load_strategy)
            .field("batch_size", batch_size)
            .field("direct_load_max_rows", direct_load_max_rows)
            .field("warehouse_pool_size", warehouse_pool_size)
            .field("warehouse_secret_arn", warehouse_secret_arn)
            .field("warehouse_redshift_iam_role", warehouse_redshift_iam_role)
            .field("fetch_queue_url", fetch_queue_url)
            .field("transform_queue_url", transform_queue_url)
            .field("load_queue_url", load_queue_url)
            .field("fetch_dlq_url", fetch_dlq_url)
            .field("transform_dlq_url", transform_dlq_url)
            .field("load_dlq_url", load_dlq_url)
            .field("aws_endpoint_url", aws_endpoint_url)
            .finish()
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

pub(super) const REDSHIFT_IAM_ROLE_VARIABLE: &str = "WAREHOUSE_REDSHIFT_IAM_ROLE";
pub(super) const REDSHIFT_IAM_ROLE_EXPECTED: &str = "an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME, or a comma-separated chain of them) or `default`";

/// A Redshift warehouse loads with `COPY … IAM_ROLE '…'`: the role is required.
pub(super) fn check_redshift_iam_role(
    kind: WarehouseKind,
    role: &Option<String>,
) -> Result<(), ConfigError> {
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
pub(super) fn is_redshift_iam_role(role: &str) -> bool {
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

pub(super) fn is_sql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}
