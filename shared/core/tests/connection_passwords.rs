//! Passwords of every character class (`/ @ : ? # %`, spaces, quotes,
//! non-ASCII) through the public API: parsed from a URL or the RDS secret,
//! round-tripped by `to_url`, and never shown by `redacted`, `Debug`,
//! `scrub`, a `ConnectionError`, a `ConfigError` or `redact_url`.

mod common;

use common::{assert_hidden, config, leak_forms, no_env, parse, parse_in, server, url_form};
use mdp_core::config::redact_url;
use mdp_core::connection::{Secret, WarehouseConnection};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

fn encoded(password: &str) -> String {
    utf8_percent_encode(password, NON_ALPHANUMERIC).to_string()
}

/// A URL carrying `password` (percent-encoded, as it must be) parses to it,
/// never shows it, and round-trips through `to_url`.
fn check_url_password(scheme: &str, password: &str) {
    let url = format!("{scheme}://etl:{}@db.example.com/market", encoded(password));
    let conn = parse(&url).unwrap_or_else(|e| panic!("{scheme} {password:?}: {e}"));
    let target = server(&conn);
    assert_eq!(target.password.as_ref().map(Secret::expose), Some(password));
    assert_eq!(target.user, "etl");
    assert_eq!(target.database.as_deref(), Some("market"));
    check_connection(&conn, password);

    // The same password as ?password=, form-encoded.
    let in_query = format!(
        "{scheme}://etl@db.example.com/market?password={}",
        url_form(password)
    );
    let conn = parse(&in_query).unwrap();
    assert_eq!(conn.password().map(Secret::expose), Some(password));
    check_connection(&conn, password);

    // Configuration: the Config's Debug never shows it; a configuration
    // error about a bad URL around it neither.
    let role = ("WAREHOUSE_REDSHIFT_IAM_ROLE", "default");
    let c = config(&[("WAREHOUSE_URL", &url), role]).unwrap();
    assert_eq!(c.warehouse, conn_without_env(&url));
    assert_hidden(password, "Config Debug", &format!("{c:?}"));
    assert_hidden(password, "Config Debug (pretty)", &format!("{c:#?}"));
    for bad in [
        format!("{url}?bogus=1"),
        format!("{url}?sslmode=sometimes"),
        format!("{url}#fragment"),
        format!(
            "{scheme}://etl:{}@db.example.com:99999/market",
            encoded(password)
        ),
        format!("{scheme}://etl:{}@/market", encoded(password)),
        format!("mysql://etl:{}@db.example.com/market", encoded(password)),
        // Written raw, as people do: not a valid URL for most classes.
        format!("{scheme}://etl:{password}@db.example.com/market"),
        format!("{scheme}://etl:{password}@db.example.com/market?bogus=1"),
    ] {
        match parse(&bad) {
            Err(e) => {
                assert_hidden(password, "ConnectionError", &e.to_string());
                assert_hidden(password, "ConnectionError Debug", &format!("{e:?}"));
            }
            // A raw password without reserved characters is a valid URL.
            Ok(conn) => check_connection(&conn, conn.password().unwrap().expose()),
        }
        match config(&[("WAREHOUSE_URL", &bad), role]) {
            Err(e) => {
                assert_eq!(e.variable, "WAREHOUSE_URL", "{e}");
                assert_hidden(password, "ConfigError", &e.to_string());
                assert_hidden(password, "ConfigError Debug", &format!("{e:?}"));
            }
            Ok(c) => assert_hidden(password, "Config Debug", &format!("{c:?}")),
        }
        assert_hidden(password, "redact_url", &mdp_core::config::redact_url(&bad));
    }
}

fn conn_without_env(url: &str) -> WarehouseConnection {
    parse(url).unwrap()
}

/// What every connection holding `password` must do.
fn check_connection(conn: &WarehouseConnection, password: &str) {
    assert_hidden(password, "redacted", &conn.redacted());
    assert!(conn.redacted().contains(":***@"), "{}", conn.redacted());
    assert_hidden(password, "Debug", &format!("{conn:?}"));
    assert_hidden(password, "Debug (pretty)", &format!("{conn:#?}"));
    assert_eq!(format!("{}", conn.password().unwrap()), "***");
    // to_url round-trips, with or without an environment.
    let url = conn.to_url();
    assert_eq!(&parse(&url).unwrap(), conn, "{}", conn.redacted());
    assert_eq!(
        &parse_in(&url, &[("PGSSLMODE", "verify-full")]).unwrap(),
        conn
    );
    // The password is scrubbed from a driver's message in every form.
    let message = leak_forms(password).join(" and ");
    let scrubbed = conn.scrub(&format!("password authentication failed: {message}"));
    assert_hidden(password, "scrub", &scrubbed);
    assert!(scrubbed.starts_with("password authentication failed: ***"));
}

/// The RDS/Redshift secret JSON carrying `password`.
fn check_secret_password(engine: &str, password: &str) {
    let json = serde_json::json!({
        "engine": engine,
        "host": "db.example.com",
        "port": 5439,
        "username": "etl",
        "password": password,
        "dbname": "market",
    })
    .to_string();
    let conn = WarehouseConnection::from_secret(&json, no_env).unwrap();
    assert_eq!(conn.password().map(Secret::expose), Some(password));
    check_connection(&conn, password);

    // The configuration the Lambda builds from it.
    let c = config(&[("WAREHOUSE_REDSHIFT_IAM_ROLE", "default")]).unwrap();
    let c = c.with_warehouse(conn.clone()).unwrap();
    assert_eq!(c.warehouse, conn);
    assert_eq!(parse(&c.warehouse_url).unwrap(), conn);
    assert_hidden(password, "Config Debug", &format!("{c:?}"));

    // Secrets that are wrong around it.
    for bad in [
        json.replace("5439", "\"x\""),
        json.replace("\"engine\"", "\"engine\":\"mysql\",\"x\""),
        json.replace("db.example.com", "db example"),
        json.replace("\"username\"", "\"user\""),
        json[..json.len() - 1].to_string(),
        password.to_string(),
    ] {
        let err = WarehouseConnection::from_secret(&bad, no_env).unwrap_err();
        assert_hidden(password, "secret error", &err.to_string());
        assert_hidden(password, "secret error Debug", &format!("{err:?}"));
    }
}

fn check_password(password: &str) {
    check_url_password("postgres", password);
    check_url_password("postgresql", password);
    check_url_password("redshift", password);
    check_secret_password("postgres", password);
    check_secret_password("redshift", password);
}

#[test]
fn password_with_slash() {
    check_password("S3cr/etPw//");
}

#[test]
fn password_with_at_sign() {
    check_password("p@ssw0rd@db");
}

#[test]
fn password_with_colon() {
    check_password("pass:word:5432");
}

#[test]
fn password_with_question_mark() {
    check_password("what?sslmode=disable");
}

#[test]
fn password_with_hash() {
    check_password("hash#tag#1");
}

#[test]
fn password_with_percent() {
    // %41 must stay those three characters, not become "A".
    check_password("100%pure%41%zz");
}

#[test]
fn password_with_space() {
    check_password("correct horse battery");
}

#[test]
fn password_with_quotes() {
    check_password(r#"it's "quoted"\"#);
}

#[test]
fn password_non_ascii() {
    check_password("pässwörd✓");
}

#[test]
fn password_with_a_mix() {
    check_password(r#"a/b@c:d?e#f%2Fg h'"ü✓&=+;[]"#);
}

#[test]
fn the_documented_raw_slash_case_is_an_error_without_the_password() {
    let url = "postgres://etl:S3cr/etPw@127.0.0.1:1/db";
    let err = parse(url).unwrap_err();
    let line = err.to_string();
    assert!(!line.contains("S3cr") && !line.contains("etPw"), "{line}");
    assert!(line.contains("percent-encoded"), "{line}");
    let err = config(&[("WAREHOUSE_URL", url)]).unwrap_err();
    assert_eq!(err.variable, "WAREHOUSE_URL");
    assert_eq!(err.value, "postgres://***@127.0.0.1:1/db");
    let line = err.to_string();
    assert!(!line.contains("S3cr") && !line.contains("etPw"), "{line}");
}

#[test]
fn redact_url_masks_what_a_clean_parse_finds_and_everything_before_the_last_at_otherwise() {
    assert_eq!(
        redact_url("postgres://u:pw@h:5432/d?sslmode=require"),
        "postgres://u:***@h:5432/d?sslmode=require"
    );
    assert_eq!(
        redact_url("postgres://h/d?user=u&password=pw"),
        "postgres://h/d?user=u&password=***"
    );
    assert_eq!(
        redact_url("postgres://etl:S3cr/etPw@127.0.0.1:1/db"),
        "postgres://***@127.0.0.1:1/db"
    );
    assert_eq!(
        redact_url("postgres://etl:1234/etPw@127.0.0.1:1/db"),
        "postgres://***@127.0.0.1:1/db"
    );
    assert_eq!(
        redact_url("postgres://etl:12?ab@h/db?password=x"),
        "postgres://***@h/db?password=***"
    );
    assert_eq!(
        redact_url("postgres://etl:12#ab@h/db"),
        "postgres://***@h/db"
    );
    assert_eq!(redact_url("sqlite://./data/w.db"), "sqlite://./data/w.db");
    assert_eq!(redact_url("not a url"), "not a url");
}
