//! The connection a Secrets Manager secret names: a warehouse URL, or the
//! standard RDS/Redshift JSON (`engine`, `host`, `port`, `username`,
//! `password`, `dbname`). Apart from URL parsing because the JSON has its
//! own fields, defaults and errors (none of which repeats the secret).

use super::url::{checked_host, looks_like_scheme};
use super::{
    ConnectionError, ServerParts, ServerTarget, TlsEnv, WarehouseConnection, WarehouseKind,
};

impl WarehouseConnection {
    /// The connection a Secrets Manager secret names: a URL, or the standard
    /// RDS/Redshift JSON (`engine`, `host`, `port`, `username`, `password`,
    /// `dbname`; other keys are ignored). Never puts the secret's text into
    /// an error.
    pub fn from_secret(
        text: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<WarehouseConnection, ConnectionError> {
        WarehouseConnection::from_secret_with(text, &TlsEnv::from_lookup(lookup))
    }

    /// [`WarehouseConnection::from_secret`] with the environment already read.
    pub fn from_secret_with(
        text: &str,
        env: &TlsEnv,
    ) -> Result<WarehouseConnection, ConnectionError> {
        let text = text.trim();
        if !text.starts_with('{') {
            return if text.contains("://") || text.starts_with("sqlite:") {
                WarehouseConnection::parse_with(text, env)
            } else {
                Err(ConnectionError::SecretFormat)
            };
        }
        server_from_secret_json(text, env).map(WarehouseConnection::Server)
    }
}

fn server_from_secret_json(text: &str, env: &TlsEnv) -> Result<ServerTarget, ConnectionError> {
    use serde_json::Value;

    let value: Value = serde_json::from_str(text).map_err(|e| ConnectionError::SecretJson {
        line: e.line(),
        column: e.column(),
    })?;
    let fields = value.as_object().ok_or(ConnectionError::SecretFormat)?;
    let text_field = |field: &'static str| -> Result<Option<&str>, ConnectionError> {
        match fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ConnectionError::SecretField {
                field,
                problem: "is not a string",
            }),
        }
    };
    let required = |field: &'static str| -> Result<&str, ConnectionError> {
        text_field(field)?.ok_or(ConnectionError::SecretField {
            field,
            problem: "is missing",
        })
    };

    let kind = match text_field("engine")?.map(|e| e.trim().to_ascii_lowercase()) {
        None => WarehouseKind::Postgres,
        Some(e) if matches!(e.as_str(), "postgres" | "postgresql" | "aurora-postgresql") => {
            WarehouseKind::Postgres
        }
        Some(e) if e == "redshift" => WarehouseKind::Redshift,
        Some(e) if looks_like_scheme(&e) => return Err(ConnectionError::Engine(e)),
        Some(_) => return Err(ConnectionError::Engine("(not shown)".into())),
    };
    let host = checked_host(required("host")?).ok_or(ConnectionError::SecretField {
        field: "host",
        problem: "is not a host name or address",
    })?;
    let bad_port = ConnectionError::SecretField {
        field: "port",
        problem: "is not a number from 1 to 65535",
    };
    let port = match fields.get("port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or(bad_port)?,
        ),
        Some(Value::String(s)) => Some(
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(bad_port)?,
        ),
        Some(_) => return Err(bad_port),
    };
    let user = required("username")?.to_string();
    if user.is_empty() {
        return Err(ConnectionError::SecretField {
            field: "username",
            problem: "is empty",
        });
    }
    let password = required("password")?.to_string();
    let database = match text_field("dbname")? {
        Some(db) if !db.is_empty() => db.to_string(),
        _ if kind == WarehouseKind::Redshift => "dev".to_string(),
        _ => "postgres".to_string(),
    };
    ServerParts {
        kind,
        host,
        port,
        user,
        password: Some(password),
        database: Some(database),
        tls: None,
        ssl_root_cert: None,
        application_name: None,
    }
    .finish(env)
}
