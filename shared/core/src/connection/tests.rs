//! Unit tests of the connection's private helpers (the TLS default and
//! choice, scrubbing free text, checking a host from a setting); everything
//! reachable through the public API is tested in `tests/connection_*.rs`.

use super::url::checked_host;
use super::*;

#[test]
fn default_tls_is_off_for_a_local_postgres_and_verify_full_elsewhere() {
    use WarehouseKind::{Postgres, Redshift};
    for host in [
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "[::1]",
        "localhost",
        "LocalHost",
        "/var/run/postgresql",
    ] {
        assert_eq!(default_tls(Postgres, host), TlsMode::Disable, "{host}");
        // A loopback Redshift is a tunnel to a cluster: verified like any other.
        assert_eq!(default_tls(Redshift, host), TlsMode::VerifyFull, "{host}");
    }
    for host in [
        "db.example.com",
        "mydb.abc123.eu-west-1.rds.amazonaws.com",
        "10.0.0.5",
        "2001:db8::1",
        "localhost.example.com",
        "0.0.0.0",
    ] {
        // Never `require`: it accepts any certificate, for any name.
        assert_eq!(default_tls(Postgres, host), TlsMode::VerifyFull, "{host}");
        assert_eq!(default_tls(Redshift, host), TlsMode::VerifyFull, "{host}");
    }
}

#[test]
fn choose_tls_prefers_the_url_then_pgsslmode_then_the_default() {
    let env = |mode: Option<&str>| TlsEnv {
        pgsslmode: mode.map(str::to_string),
        ssl_root_cert: None,
    };
    let pg = WarehouseKind::Postgres;
    assert_eq!(
        choose_tls(
            Some(TlsMode::VerifyFull),
            pg,
            "localhost",
            &env(Some("disable"))
        ),
        Ok(TlsMode::VerifyFull)
    );
    assert_eq!(
        choose_tls(None, pg, "localhost", &env(Some("verify-ca"))),
        Ok(TlsMode::VerifyCa)
    );
    assert_eq!(
        choose_tls(None, pg, "localhost", &env(None)),
        Ok(TlsMode::Disable)
    );
    assert_eq!(
        choose_tls(None, pg, "db.example.com", &env(None)),
        Ok(TlsMode::VerifyFull)
    );
    // PGSSLMODE can still lower it, for every host.
    assert_eq!(
        choose_tls(None, pg, "db.example.com", &env(Some("require"))),
        Ok(TlsMode::Require)
    );
    assert_eq!(
        choose_tls(
            None,
            WarehouseKind::Redshift,
            "127.0.0.1",
            &env(Some("require"))
        ),
        Ok(TlsMode::Require)
    );
    let err = choose_tls(None, pg, "db", &env(Some("sometimes"))).unwrap_err();
    assert_eq!(err.variable(), Some(PGSSLMODE));
}

#[test]
fn scrubbing_matches_any_mix_of_raw_and_escaped_bytes() {
    let pw = "p@ss w/rd";
    let text = "a p@ss w/rd b p%40ss%20w%2Frd c p%40ss+w%2frd d p@ss%20w/rd e p@ss";
    assert_eq!(
        scrub_secret(text, pw.as_bytes()),
        "a *** b *** c *** d *** e p@ss"
    );
    // A literal % in the password, written raw or as %25.
    assert_eq!(
        scrub_secret("x 50%25off y 50%off", b"50%off"),
        "x *** y ***"
    );
    // Non-ASCII, raw and escaped; the text stays intact around it.
    let pw = "pässwörd✓";
    let encoded = percent_encode(pw, UNRESERVED);
    let text = format!("é{pw}é {encoded} {}", encoded.to_lowercase());
    assert_eq!(scrub_secret(&text, pw.as_bytes()), "é***é *** ***");
    // Too short to scrub from free text.
    assert_eq!(scrub_secret("a pw b", b"pw"), "a pw b");
}

#[test]
fn hosts_from_settings_are_checked() {
    assert_eq!(
        checked_host(" db.internal ").as_deref(),
        Some("db.internal")
    );
    assert_eq!(checked_host("[::1]").as_deref(), Some("::1"));
    assert_eq!(checked_host("/tmp").as_deref(), Some("/tmp"));
    for bad in ["", "db internal", "db:5432", "u@db", "db/x"] {
        assert_eq!(checked_host(bad), None, "{bad}");
    }
}
