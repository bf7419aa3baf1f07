//! Warehouse URLs for the fuzz properties of `fuzz_config.rs`: generated
//! passwords, URLs built around them from valid and broken parts, the forms
//! in which a password could leak, and the check of a parsed connection.

use std::collections::HashMap;

use mdp_core::connection::WarehouseConnection;
use mdp_core::encoding::{UNRESERVED, percent_encode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::collection::vec;
use proptest::prelude::*;

use super::hostile_string;
/// A password of printable characters (mostly ASCII, sometimes any).
pub(crate) fn password() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[ -~]{8,24}", 1 => "[^\\p{C}\\s]{8,16}"]
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Placement {
    /// As written by hand, unencoded.
    Raw,
    /// Every non-alphanumeric byte percent-encoded, as the README asks.
    Encoded,
    /// In `?password=`, form-encoded.
    QueryForm,
    /// In `?password=`, unencoded.
    QueryRaw,
}

/// A URL around `password`, its parts from lists that mix valid and broken.
#[derive(Debug, Clone)]
pub(crate) struct UrlParts {
    pub(crate) scheme: &'static str,
    pub(crate) user: &'static str,
    pub(crate) host: &'static str,
    pub(crate) port: &'static str,
    pub(crate) database: &'static str,
    pub(crate) query: Vec<&'static str>,
    pub(crate) fragment: bool,
    pub(crate) placement: Placement,
}

/// Mostly one of the valid values, else one of the broken ones.
pub(crate) fn pick(valid: &[&'static str], broken: &[&'static str]) -> BoxedStrategy<&'static str> {
    prop_oneof![
        3 => prop::sample::select(valid.to_vec()),
        1 => prop::sample::select(broken.to_vec()),
    ]
    .boxed()
}

pub(crate) fn url_parts() -> impl Strategy<Value = UrlParts> {
    (
        pick(
            &["postgres", "postgresql", "redshift", "POSTGRES"],
            &["sqlite", "mysql", "postgres+ssl", ""],
        ),
        pick(&["etl", "ü", "a%40b"], &["", "u s", "%FF"]),
        pick(
            &[
                "db.example.com",
                "127.0.0.1",
                "localhost",
                "[::1]",
                "%2Fvar%2Frun%2Fpostgresql",
                "例え.jp",
            ],
            &["[::1", "::1", "", "h st", "xn--", "a..b", "999.1.1.1"],
        ),
        pick(
            &["", ":5432", ":65535"],
            &[":0", ":65536", ":abc", ":", ":-1", ":99999999999"],
        ),
        pick(
            &["/market", "", "/", "/%C3%BC"],
            &["/a/b", "/%FF", "/ü", "/m@x"],
        ),
        vec(
            pick(
                &[
                    "sslmode=disable",
                    "sslmode=verify-full",
                    "ssl-mode=require",
                    "sslrootcert=/ca.pem",
                    "application_name=mdp",
                ],
                &[
                    "sslmode=sometimes",
                    "user=other",
                    "bogus=1",
                    "=",
                    "&",
                    "password",
                ],
            ),
            0..3,
        ),
        proptest::bool::weighted(0.05),
        prop::sample::select(vec![
            Placement::Raw,
            Placement::Encoded,
            Placement::Encoded,
            Placement::QueryForm,
            Placement::QueryRaw,
        ]),
    )
        .prop_map(
            |(scheme, user, host, port, database, query, fragment, placement)| UrlParts {
                scheme,
                user,
                host,
                port,
                database,
                query,
                fragment,
                placement,
            },
        )
}

pub(crate) fn form(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(crate) fn build_url(p: &UrlParts, password: &str) -> String {
    let mut query: Vec<String> = p.query.iter().map(|q| q.to_string()).collect();
    let userinfo = match p.placement {
        Placement::Raw => format!("{}:{password}@", p.user),
        Placement::Encoded => format!(
            "{}:{}@",
            p.user,
            utf8_percent_encode(password, NON_ALPHANUMERIC)
        ),
        Placement::QueryForm => {
            query.push(format!("password={}", form(password)));
            format!("{}@", p.user)
        }
        Placement::QueryRaw => {
            query.push(format!("password={password}"));
            format!("{}@", p.user)
        }
    };
    let mut url = format!(
        "{}://{userinfo}{}{}{}",
        p.scheme, p.host, p.port, p.database
    );
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    if p.fragment {
        url.push_str("#frag");
    }
    url
}

/// Every form in which a password could show in a text: as is, escaped as
/// `Debug` writes it, percent-encoded (either hex case), form-encoded.
pub(crate) fn leak_forms(password: &str) -> Vec<String> {
    let debug = format!("{password:?}");
    let encoded = utf8_percent_encode(password, NON_ALPHANUMERIC).to_string();
    let mut forms = vec![
        password.to_string(),
        debug[1..debug.len() - 1].to_string(),
        encoded.to_lowercase(),
        encoded,
        percent_encode(password, UNRESERVED),
        form(password),
    ];
    forms.sort();
    forms.dedup();
    forms
}

pub(crate) fn assert_hidden(password: &str, what: &str, text: &str) -> Result<(), TestCaseError> {
    for form in leak_forms(password) {
        prop_assert!(
            !text.contains(&form),
            "{what} shows the password {password:?} (as {form:?}): {text}"
        );
    }
    Ok(())
}

/// What a parsed connection promises: `to_url` parses back to it under any
/// `PGSSLMODE` (the URL names its `sslmode`), and `redacted` shows the
/// password slot as `***`.
///
/// Not under any `WAREHOUSE_SSL_ROOT_CERT`, although `to_url`'s comment says
/// "with any environment": a connection without a root certificate gains
/// the environment's on the way back (`postgres://A@h` parsed with no
/// environment, then its `to_url` parsed with `WAREHOUSE_SSL_ROOT_CERT=/ca.pem`,
/// has `ssl_root_cert: Some("/ca.pem")`). So the second environment here
/// has no root certificate.
pub(crate) fn check_connection(
    conn: &WarehouseConnection,
    other_env: &HashMap<&'static str, String>,
) -> Result<(), TestCaseError> {
    let url = conn.to_url();
    let lookup = |k: &str| match k {
        "WAREHOUSE_SSL_ROOT_CERT" => None,
        _ => other_env.get(k).cloned(),
    };
    match WarehouseConnection::parse(&url, lookup) {
        Ok(back) => prop_assert_eq!(&back, conn, "to_url gave {}", conn.redacted()),
        Err(e) => prop_assert!(false, "to_url gave {} which fails: {e}", conn.redacted()),
    }
    let redacted = conn.redacted();
    if let Some(p) = conn.password() {
        match url::Url::parse(&redacted) {
            Ok(u) => prop_assert_eq!(u.password(), Some("***"), "{}", redacted),
            Err(e) => prop_assert!(false, "redacted {redacted} is no URL: {e}"),
        }
        if p.expose().chars().count() >= 8 {
            assert_hidden(p.expose(), "redacted", &redacted)?;
            assert_hidden(p.expose(), "Debug", &format!("{conn:?}"))?;
        }
    }
    Ok(())
}

pub(crate) fn tls_env() -> impl Strategy<Value = HashMap<&'static str, String>> {
    (
        proptest::option::of(prop_oneof![
            prop::sample::select(vec![
                "disable",
                "allow",
                "prefer",
                "require",
                "verify-ca",
                "VERIFY-FULL",
                " verify-full ",
                "sometimes",
                "",
            ])
            .prop_map(str::to_string),
            hostile_string(),
        ]),
        proptest::option::of(prop_oneof![Just("/ca.pem".to_string()), hostile_string()]),
    )
        .prop_map(|(mode, cert)| {
            let mut env = HashMap::new();
            if let Some(m) = mode {
                env.insert("PGSSLMODE", m);
            }
            if let Some(c) = cert {
                env.insert("WAREHOUSE_SSL_ROOT_CERT", c);
            }
            env
        })
}
