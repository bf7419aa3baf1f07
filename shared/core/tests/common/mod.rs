//! Helpers the `connection_*.rs` tests share: parsing with or without an
//! environment, a configuration from pairs, and checking that a password
//! shows in no form (raw, escaped, percent- or form-encoded) in a text.
//! Each test file uses a part of them, hence `allow(dead_code)`.
#![allow(dead_code)]

use std::collections::HashMap;

use mdp_core::Config;
use mdp_core::config::ConfigError;
use mdp_core::connection::{ConnectionError, ServerTarget, WarehouseConnection};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

pub fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn no_env(_: &str) -> Option<String> {
    None
}

pub fn parse(url: &str) -> Result<WarehouseConnection, ConnectionError> {
    WarehouseConnection::parse(url, no_env)
}

pub fn parse_in(url: &str, env: &[(&str, &str)]) -> Result<WarehouseConnection, ConnectionError> {
    let env = vars(env);
    WarehouseConnection::parse(url, |k| env.get(k).cloned())
}

pub fn server(conn: &WarehouseConnection) -> &ServerTarget {
    match conn {
        WarehouseConnection::Server(s) => s,
        other => panic!("not a server: {other:?}"),
    }
}

pub fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = vars(pairs);
    Config::from_lookup(|k| env.get(k).cloned())
}

/// Every form in which a password could leak into text: as is, as a Rust
/// string literal escapes it (`Debug`), percent-encoded in either hex case,
/// form-encoded.
pub fn leak_forms(password: &str) -> Vec<String> {
    let encoded = utf8_percent_encode(password, NON_ALPHANUMERIC).to_string();
    let debug = format!("{password:?}");
    let mut forms = vec![
        password.to_string(),
        debug[1..debug.len() - 1].to_string(),
        encoded.clone(),
        lower_hex(&encoded),
        mdp_core::encoding::percent_encode(password, mdp_core::encoding::UNRESERVED),
        url_form(password),
    ];
    forms.sort();
    forms.dedup();
    forms
}

/// `%2F` as `%2f`, the rest as it is.
pub fn lower_hex(encoded: &str) -> String {
    let mut out = String::new();
    let mut rest = encoded;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3).unwrap_or(&rest[i..]);
        out.push_str(&escape.to_lowercase());
        rest = &rest[i + escape.len()..];
    }
    out.push_str(rest);
    out
}

pub fn url_form(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn assert_hidden(password: &str, what: &str, text: &str) {
    for form in leak_forms(password) {
        assert!(
            !text.contains(&form),
            "{what} shows the password ({form:?}): {text}"
        );
    }
}
