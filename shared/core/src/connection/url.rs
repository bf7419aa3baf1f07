//! Reading and writing warehouse URLs: `sqlite://PATH` and the
//! `postgres://` / `redshift://` server URLs, percent-decoding every part
//! and checking hosts, ports and query parameters. Kept apart from the
//! types in `mod.rs` because it is the bulk of the parsing, and its errors
//! must never repeat the URL (which can hold the password).

use std::net::IpAddr;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;
use url::{Host, Url};

use super::{ConnectionError, ServerParts, ServerTarget, SqliteTarget, TlsEnv, WarehouseKind};
use crate::encoding::{UNRESERVED, percent_encode};

/// Query parameters a `postgres://` or `redshift://` URL may carry.
const SERVER_PARAMETERS: &str =
    "sslmode (or ssl-mode), sslrootcert, application_name, user, password";
/// Query parameters a `sqlite://` URL may carry.
const SQLITE_PARAMETERS: &str = "mode=memory, cache=shared";

pub(super) fn looks_like_scheme(s: &str) -> bool {
    s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// A name repeated in an error only when it looks like a parameter name
/// (so never a piece of a password that a raw `?` or `&` split off).
fn shown_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if plain {
        name.to_string()
    } else {
        "(not shown: not a plain name)".to_string()
    }
}

/// `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`, `sqlite://NAME?mode=memory`.
pub(super) fn parse_sqlite(url: &str) -> Result<SqliteTarget, ConnectionError> {
    let rest = &url["sqlite:".len()..];
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut in_memory = path == ":memory:";
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("mode", "memory")) => in_memory = true,
            Some(("cache", "shared")) => {}
            Some(("mode", _)) => {
                return Err(ConnectionError::Invalid(
                    "a sqlite URL's mode can only be memory",
                ));
            }
            Some(("cache", _)) => {
                return Err(ConnectionError::Invalid(
                    "a sqlite URL's cache can only be shared",
                ));
            }
            other => {
                let name = other.map_or(pair, |(k, _)| k);
                return Err(ConnectionError::UnknownParameter {
                    name: shown_name(name),
                    accepted: SQLITE_PARAMETERS,
                });
            }
        }
    }
    if path.is_empty() {
        return Err(ConnectionError::Invalid(
            "sqlite:// needs a path, e.g. sqlite://./data/warehouse.db",
        ));
    }
    // The configuration trims values: a path with a space at an end would
    // not survive being written back as a URL.
    if path.trim() != path {
        return Err(ConnectionError::Invalid(
            "a sqlite URL's path cannot start or end with a space",
        ));
    }
    Ok(SqliteTarget {
        path: PathBuf::from(path),
        in_memory,
    })
}

pub(super) fn sqlite_url(t: &SqliteTarget) -> String {
    let path = t.path.to_string_lossy();
    match (t.in_memory, path.as_ref()) {
        (true, ":memory:") => "sqlite::memory:".to_string(),
        (true, name) => format!("sqlite://{name}?mode=memory&cache=shared"),
        (false, path) => format!("sqlite://{path}"),
    }
}

/// Percent-decodes one URL component; the result must be UTF-8.
fn decode(text: &str, not_utf8: &'static str) -> Result<String, ConnectionError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ConnectionError::Invalid(not_utf8))
}

fn syntax_error(err: url::ParseError) -> ConnectionError {
    ConnectionError::Invalid(match err {
        url::ParseError::EmptyHost => "the URL has no host",
        url::ParseError::InvalidPort => {
            "the URL's port is not a number from 1 to 65535 (a password with / ? # @ : or % must be percent-encoded, e.g. / as %2F)"
        }
        url::ParseError::InvalidIpv6Address => "the URL's host is not a valid IPv6 address",
        url::ParseError::InvalidDomainCharacter => {
            "the URL's host has a character a host name cannot have (a password with / ? # @ : or % must be percent-encoded, e.g. / as %2F)"
        }
        url::ParseError::RelativeUrlWithoutBase => "not a URL",
        _ => "not a valid URL",
    })
}

pub(super) fn parse_server(
    kind: WarehouseKind,
    text: &str,
    env: &TlsEnv,
) -> Result<ServerTarget, ConnectionError> {
    let url = Url::parse(text).map_err(syntax_error)?;
    if url.fragment().is_some() {
        return Err(ConnectionError::Invalid(
            "the URL has a # fragment (a password with # must be percent-encoded as %23)",
        ));
    }
    let host = match url.host() {
        Some(Host::Ipv6(ip)) => ip.to_string(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Domain(name)) => {
            decode(name, "the URL's host is not UTF-8 once percent-decoded")?
        }
        None => String::new(),
    };
    if host.is_empty() {
        return Err(ConnectionError::Invalid(
            "the URL has no host (postgres://USER:PASSWORD@HOST:PORT/DATABASE)",
        ));
    }
    if url.port() == Some(0) {
        return Err(ConnectionError::Invalid(
            "the URL's port is not a number from 1 to 65535",
        ));
    }
    let path = url.path();
    let database = match path.strip_prefix('/').unwrap_or(path) {
        "" => None,
        name if name.contains(['/', '@']) => {
            return Err(ConnectionError::Invalid(
                "the URL's path is not /DATABASE (a password with / ? # @ : or % must be percent-encoded, e.g. / as %2F)",
            ));
        }
        name => Some(decode(
            name,
            "the URL's database name is not UTF-8 once percent-decoded",
        )?)
        .filter(|d| !d.is_empty()),
    };

    let mut user = Some(decode(
        url.username(),
        "the URL's user is not UTF-8 once percent-decoded",
    )?)
    .filter(|u| !u.is_empty());
    let mut password = match url.password() {
        Some(p) => Some(decode(
            p,
            "the URL's password is not UTF-8 once percent-decoded",
        )?),
        None => None,
    };
    let mut tls = None;
    let mut ssl_root_cert = None;
    let mut application_name = None;
    let mut seen: Vec<&'static str> = Vec::new();
    // After a `password` parameter, an "unknown parameter" may be the rest of
    // a password written with a raw `&`: never name it then.
    let mut after_password = false;
    for (name, value) in url.query_pairs() {
        let key: &'static str = match name.as_ref() {
            "sslmode" | "ssl-mode" => "sslmode",
            "sslrootcert" => "sslrootcert",
            "application_name" => "application_name",
            "user" => "user",
            "password" => "password",
            other => {
                return Err(ConnectionError::UnknownParameter {
                    name: if after_password {
                        "(not shown: it follows the password; write & in a password as %26)"
                            .to_string()
                    } else {
                        shown_name(other)
                    },
                    accepted: SERVER_PARAMETERS,
                });
            }
        };
        after_password |= key == "password";
        if seen.contains(&key) {
            return Err(ConnectionError::RepeatedParameter(key));
        }
        seen.push(key);
        let value = value.into_owned();
        match key {
            "sslmode" => {
                tls = Some(value.parse().map_err(|_| {
                    ConnectionError::Invalid(
                        "the URL's sslmode is not one of disable, allow, prefer, require, verify-ca, verify-full",
                    )
                })?)
            }
            "sslrootcert" => {
                ssl_root_cert = Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty())
            }
            "application_name" => {
                application_name = Some(value).filter(|v| !v.is_empty());
            }
            "user" if user.is_some() => {
                return Err(ConnectionError::Invalid(
                    "the URL names the user twice: before the host and as ?user=",
                ));
            }
            "user" => user = Some(value).filter(|v| !v.is_empty()),
            _ if password.is_some() => {
                return Err(ConnectionError::Invalid(
                    "the URL gives the password twice: before the host and as ?password=",
                ));
            }
            _ => password = Some(value),
        }
    }
    let user = user.ok_or(ConnectionError::Invalid(
        "the URL names no user (postgres://USER:PASSWORD@HOST:PORT/DATABASE)",
    ))?;
    ServerParts {
        kind,
        host,
        port: url.port(),
        user,
        password,
        database,
        tls,
        ssl_root_cert,
        application_name,
    }
    .finish(env)
}

/// The host as a URL carries it: an IPv6 address in brackets, anything
/// else percent-encoded (a Unix socket directory becomes `%2Fvar%2Frun…`,
/// as libpq and sqlx read it).
fn url_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => percent_encode(host, UNRESERVED),
    }
}

/// `password` is already percent-encoded (or `***`).
pub(super) fn server_url(t: &ServerTarget, password: Option<&str>) -> String {
    // An IPv6 address in brackets, or only letters, digits, `-._~` and `%XX`:
    // always a valid host.
    let mut url = Url::parse(&format!("{}://{}", t.kind.scheme(), url_host(&t.host)))
        .expect("a URL of a known scheme and a percent-encoded host parses");
    // These fail only on a URL with an empty host, which parsing never gives.
    let _ = url.set_port(Some(t.port));
    let _ = url.set_username(&percent_encode(&t.user, UNRESERVED));
    let _ = url.set_password(password);
    if let Some(db) = &t.database {
        url.set_path(&format!("/{}", percent_encode(db, UNRESERVED)));
    }
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("sslmode", t.tls.as_str());
        if let Some(cert) = &t.ssl_root_cert {
            query.append_pair("sslrootcert", &cert.to_string_lossy());
        }
        if let Some(name) = &t.application_name {
            query.append_pair("application_name", name);
        }
    }
    url.to_string()
}

/// A host from a secret or a setting: a name, an IP address (IPv6 with or
/// without brackets) or a Unix socket directory.
pub(super) fn checked_host(host: &str) -> Option<String> {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || "#/:<>?@[\\]^|%".contains(c);
    if host.starts_with('/') || (!host.is_empty() && !host.contains(forbidden)) {
        Some(host.to_string())
    } else {
        None
    }
}
