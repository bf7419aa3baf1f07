//! The warehouse connection (DESIGN.md sections 6-7): one place that parses
//! `WAREHOUSE_URL`, the RDS/Redshift secret and the Airflow deployment's
//! settings, chooses TLS, and keeps the password out of every message.
//!
//! The password lives in a [`Secret`] (shown as `***` by `Debug` and
//! `Display`); [`WarehouseConnection::redacted`] is the URL to log,
//! [`WarehouseConnection::scrub`] removes the password from other text (a
//! database driver's error), and no [`ConnectionError`] repeats the URL or
//! any value that could hold the password: each says what is wrong instead.
//!
//! This file holds the types, the TLS choice and the methods every source
//! shares; the sources and the text handling live next to it, one concern a
//! file: `url` (reading and writing `sqlite://`, `postgres://` and
//! `redshift://` URLs), `secret` (the Secrets Manager JSON), `airflow` (the
//! `ENVIRONMENT` / `{DEV,STAGING,PROD}_WAREHOUSE_*` settings) and `redact`
//! (masking and scrubbing the password).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::encoding::{UNRESERVED, percent_encode};

mod airflow;
mod redact;
mod secret;
#[cfg(test)]
mod tests;
mod url;

pub use airflow::{AirflowEnvironment, AirflowVariables, AirflowWarehouse, ENVIRONMENT};
pub use redact::redact_url;

use self::redact::scrub_secret;
use self::url::{looks_like_scheme, parse_server, parse_sqlite, server_url, sqlite_url};

/// `PGSSLMODE`: libpq's TLS mode, used when the URL has no `sslmode`.
pub const PGSSLMODE: &str = "PGSSLMODE";
/// `WAREHOUSE_SSL_ROOT_CERT`: the CA certificate(s) to verify the server
/// with, used when the URL has no `sslrootcert`.
pub const WAREHOUSE_SSL_ROOT_CERT: &str = "WAREHOUSE_SSL_ROOT_CERT";

/// What `WAREHOUSE_URL` accepts.
const EXPECTED_URL: &str = "sqlite://PATH, postgres://… or redshift://…";

/// The warehouse kind, from the scheme of `WAREHOUSE_URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarehouseKind {
    Sqlite,
    Postgres,
    Redshift,
}

impl WarehouseKind {
    /// The URL scheme (`sqlite`, `postgres`, `redshift`).
    pub fn scheme(self) -> &'static str {
        match self {
            WarehouseKind::Sqlite => "sqlite",
            WarehouseKind::Postgres => "postgres",
            WarehouseKind::Redshift => "redshift",
        }
    }

    /// The port a server listens on when the URL names none.
    pub fn default_port(self) -> Option<u16> {
        match self {
            WarehouseKind::Sqlite => None,
            WarehouseKind::Postgres => Some(5432),
            WarehouseKind::Redshift => Some(5439),
        }
    }
}

impl fmt::Display for WarehouseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// libpq's `sslmode`. `allow` (plain first, TLS if the server insists)
/// counts as `prefer`: both accept a connection without TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    /// The libpq name (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TLS mode that is not one of libpq's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected one of disable, allow, prefer, require, verify-ca, verify-full")]
pub struct UnknownTlsMode;

impl FromStr for TlsMode {
    type Err = UnknownTlsMode;
    fn from_str(s: &str) -> Result<TlsMode, UnknownTlsMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disable" => Ok(TlsMode::Disable),
            "allow" | "prefer" => Ok(TlsMode::Prefer),
            "require" => Ok(TlsMode::Require),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-full" => Ok(TlsMode::VerifyFull),
            _ => Err(UnknownTlsMode),
        }
    }
}

/// A password. `Debug` and `Display` show `***`; [`Secret::expose`] gives
/// the value to the code that must send it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An embedded SQLite warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteTarget {
    /// The file as written after `sqlite://` (relative to the working
    /// directory unless absolute), or the name of an in-memory database.
    pub path: PathBuf,
    /// `sqlite::memory:`, `sqlite://:memory:` or `?mode=memory`.
    pub in_memory: bool,
}

/// A Postgres or Redshift server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTarget {
    /// [`WarehouseKind::Postgres`] or [`WarehouseKind::Redshift`].
    pub kind: WarehouseKind,
    /// A host name, an IP address (IPv6 without brackets) or a Unix socket
    /// directory (starting with `/`).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    /// None: the server's default (the user's name).
    pub database: Option<String>,
    pub tls: TlsMode,
    /// CA certificate(s) to verify the server with (`verify-ca`, `verify-full`).
    pub ssl_root_cert: Option<PathBuf>,
    pub application_name: Option<String>,
}

/// Where the warehouse is, with everything needed to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseConnection {
    Sqlite(SqliteTarget),
    Server(ServerTarget),
}

/// What is wrong with a warehouse connection. Never contains the password
/// nor the URL (which can hold it): it says what is wrong instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Not `sqlite:`, `postgres:`, `postgresql:` or `redshift:`; the scheme
    /// is repeated only when it looks like one.
    #[error("{}", scheme_message(.0.as_deref()))]
    Scheme(Option<String>),
    /// A malformed URL: what is wrong.
    #[error("{0}")]
    Invalid(&'static str),
    /// A query parameter this pipeline does not know (its name is repeated
    /// only when it looks like one).
    #[error("unknown query parameter {name} (accepted: {accepted})")]
    UnknownParameter {
        name: String,
        accepted: &'static str,
    },
    #[error("the query parameter {0} is given more than once")]
    RepeatedParameter(&'static str),
    /// An environment variable (`PGSSLMODE`, `ENVIRONMENT`, the Airflow
    /// settings) with a bad or missing value; `value` is never a password.
    #[error("{variable}={value:?}: {expected}")]
    Setting {
        variable: &'static str,
        value: String,
        expected: String,
    },
    #[error("is neither a URL nor the JSON {{engine, host, port, username, password, dbname}}")]
    SecretFormat,
    #[error(
        "is not the JSON {{engine, host, port, username, password, dbname}} (error at line {line}, column {column})"
    )]
    SecretJson { line: usize, column: usize },
    #[error("the secret's {field} {problem}")]
    SecretField {
        field: &'static str,
        problem: &'static str,
    },
    #[error("the secret's engine {0:?} is not postgres or redshift")]
    Engine(String),
}

fn scheme_message(scheme: Option<&str>) -> String {
    match scheme {
        Some(s) => format!("the scheme {s:?} is not supported: expected {EXPECTED_URL}"),
        None => format!("not a warehouse URL: expected {EXPECTED_URL}"),
    }
}

impl ConnectionError {
    /// The environment variable at fault, when it is not the URL itself.
    pub fn variable(&self) -> Option<&'static str> {
        match self {
            ConnectionError::Setting { variable, .. } => Some(variable),
            _ => None,
        }
    }
}

/// What the environment says about TLS to a server, read once: `PGSSLMODE`
/// and `WAREHOUSE_SSL_ROOT_CERT` (empty values count as unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsEnv {
    pub pgsslmode: Option<String>,
    pub ssl_root_cert: Option<PathBuf>,
}

impl TlsEnv {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> TlsEnv {
        TlsEnv {
            pgsslmode: trimmed(&lookup, PGSSLMODE),
            ssl_root_cert: trimmed(&lookup, WAREHOUSE_SSL_ROOT_CERT).map(PathBuf::from),
        }
    }
}

fn trimmed(lookup: impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The one place TLS to a server is chosen: an explicit `sslmode` in the
/// URL wins; else `PGSSLMODE` when the environment sets it; else
/// [`default_tls`] (`verify-full`, or `disable` for a local Postgres).
fn choose_tls(
    explicit: Option<TlsMode>,
    kind: WarehouseKind,
    host: &str,
    env: &TlsEnv,
) -> Result<TlsMode, ConnectionError> {
    if let Some(mode) = explicit {
        return Ok(mode);
    }
    if let Some(value) = &env.pgsslmode {
        return value
            .parse()
            .map_err(|e: UnknownTlsMode| ConnectionError::Setting {
                variable: PGSSLMODE,
                value: value.clone(),
                expected: e.to_string(),
            });
    }
    Ok(default_tls(kind, host))
}

/// TLS when neither the URL nor `PGSSLMODE` says: none to a Postgres on
/// loopback or a Unix socket (a local server, where TLS only costs);
/// everywhere else `verify-full`: the certificate must chain to a trusted
/// root (the built-in webpki roots, plus `sslrootcert` /
/// `WAREHOUSE_SSL_ROOT_CERT`) and name the host, so the password never goes
/// to a server that merely answers TLS (`require` accepts any certificate).
///
/// Redshift is `verify-full` on loopback too: a loopback Redshift is an SSH
/// tunnel or port forward to a cluster, the password still crosses the
/// network, and nothing local proves the tunnel's far end is the cluster.
/// The cluster's certificate does not name `localhost`, so such a tunnel
/// fails the name check: connect to the cluster's own name resolved to the
/// tunnel (a hosts entry) to keep the check, or say `sslmode=require` in the
/// URL — the user's explicit choice, never a default.
fn default_tls(kind: WarehouseKind, host: &str) -> TlsMode {
    if kind == WarehouseKind::Postgres && is_local(host) {
        TlsMode::Disable
    } else {
        TlsMode::VerifyFull
    }
}

/// Loopback (`127.0.0.0/8`, `::1`), `localhost`, or a Unix socket directory.
fn is_local(host: &str) -> bool {
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The parts of a server target before TLS is chosen.
struct ServerParts {
    kind: WarehouseKind,
    host: String,
    port: Option<u16>,
    user: String,
    password: Option<String>,
    database: Option<String>,
    tls: Option<TlsMode>,
    ssl_root_cert: Option<PathBuf>,
    application_name: Option<String>,
}

impl ServerParts {
    fn finish(self, env: &TlsEnv) -> Result<ServerTarget, ConnectionError> {
        let tls = choose_tls(self.tls, self.kind, &self.host, env)?;
        Ok(ServerTarget {
            kind: self.kind,
            port: self.port.or(self.kind.default_port()).unwrap_or_default(),
            host: self.host,
            user: self.user,
            password: self.password.map(Secret),
            database: self.database,
            tls,
            ssl_root_cert: self.ssl_root_cert.or_else(|| env.ssl_root_cert.clone()),
            application_name: self.application_name,
        })
    }
}

impl WarehouseConnection {
    /// Parses `sqlite://PATH`, `postgres://…` (or `postgresql://`) or
    /// `redshift://…`; `lookup` reads `PGSSLMODE` and
    /// `WAREHOUSE_SSL_ROOT_CERT` (the environment, or a map in tests).
    pub fn parse(
        url: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<WarehouseConnection, ConnectionError> {
        WarehouseConnection::parse_with(url, &TlsEnv::from_lookup(lookup))
    }

    /// [`WarehouseConnection::parse`] with the environment already read.
    pub fn parse_with(url: &str, env: &TlsEnv) -> Result<WarehouseConnection, ConnectionError> {
        let url = url.trim();
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        // Repeated in an error only when it is followed by `://` and looks like one.
        let shown_scheme = url
            .split_once("://")
            .map(|(s, _)| s)
            .filter(|s| looks_like_scheme(s));
        match scheme.as_deref() {
            Some("sqlite") => parse_sqlite(url).map(WarehouseConnection::Sqlite),
            Some("postgres" | "postgresql") => {
                parse_server(WarehouseKind::Postgres, url, env).map(WarehouseConnection::Server)
            }
            Some("redshift") => {
                parse_server(WarehouseKind::Redshift, url, env).map(WarehouseConnection::Server)
            }
            _ => Err(ConnectionError::Scheme(shown_scheme.map(str::to_string))),
        }
    }

    pub fn kind(&self) -> WarehouseKind {
        match self {
            WarehouseConnection::Sqlite(_) => WarehouseKind::Sqlite,
            WarehouseConnection::Server(s) => s.kind,
        }
    }

    /// The password, if the connection has one.
    pub fn password(&self) -> Option<&Secret> {
        match self {
            WarehouseConnection::Sqlite(_) => None,
            WarehouseConnection::Server(s) => s.password.as_ref(),
        }
    }

    /// A URL that parses back to this connection (with any environment):
    /// the server URL names its port and `sslmode` explicitly, user,
    /// password and database are percent-encoded.
    pub fn to_url(&self) -> String {
        match self {
            WarehouseConnection::Sqlite(t) => sqlite_url(t),
            WarehouseConnection::Server(t) => {
                let password = t
                    .password
                    .as_ref()
                    .map(|p| percent_encode(p.expose(), UNRESERVED));
                server_url(t, password.as_deref())
            }
        }
    }

    /// [`WarehouseConnection::to_url`] with the password shown as `***`, for
    /// logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            WarehouseConnection::Sqlite(t) => sqlite_url(t),
            WarehouseConnection::Server(t) => {
                let url = server_url(t, t.password.as_ref().map(|_| "***"));
                // A password that is also the user, host or database name stays hidden.
                self.scrub(&url)
            }
        }
    }

    /// `text` (e.g. a database driver's error) with the password replaced by
    /// `***` wherever it appears: as is, percent-encoded (either hex case,
    /// `+` for a space) or any mix of both. Passwords shorter than 4 bytes
    /// are left: they would blank out ordinary words.
    pub fn scrub(&self, text: &str) -> String {
        match self.password() {
            Some(secret) => scrub_secret(text, secret.expose().as_bytes()),
            None => text.to_string(),
        }
    }
}
