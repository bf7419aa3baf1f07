//! Parsing a warehouse connection through the public API: the TLS choice
//! (`sslmode`, `PGSSLMODE`, the loopback default, the root certificate),
//! hosts, ports and query parameters, SQLite URLs, and the RDS/Redshift
//! secret JSON. Passwords are in `connection_passwords.rs`, the Airflow
//! settings in `connection_airflow.rs`.

mod common;

use std::path::PathBuf;

use common::{config, no_env, parse, parse_in, server, vars};
use mdp_core::connection::{Secret, SqliteTarget, TlsMode, WarehouseConnection, WarehouseKind};

// ---------------------------------------------------------------------------
// TLS

#[test]
fn tls_is_off_on_loopback_and_verified_elsewhere() {
    let tls = |url: &str| server(&parse(url).unwrap()).tls;
    for url in [
        "postgres://u@127.0.0.1/x",
        "postgres://u@127.0.0.1:5432/x",
        "postgres://u@[::1]/x",
        "postgres://u@[::1]:6432/x",
        "postgres://u@localhost/x",
        "postgresql://u@LOCALHOST/x",
        "postgres://u@%2Fvar%2Frun%2Fpostgresql/x",
    ] {
        assert_eq!(tls(url), TlsMode::Disable, "{url}");
    }
    // A remote server's certificate chain and host name are verified (not
    // merely `require`d, which accepts any certificate for any name).
    for url in [
        "postgres://u@db.example.com/x",
        "postgres://u@mydb.abc123.eu-west-1.rds.amazonaws.com:5432/x",
        "postgres://u@10.0.0.5/x",
        "postgres://u@[2001:db8::1]/x",
        "redshift://u@cluster.abc.eu-west-1.redshift.amazonaws.com/dev",
        "redshift://u@wg.123456789012.eu-west-1.redshift-serverless.amazonaws.com/dev",
        // Redshift on loopback is a tunnel to a cluster: verified too (the
        // URL says sslmode=require to accept the tunnel's name mismatch).
        "redshift://u@127.0.0.1/dev",
        "redshift://u@localhost/dev",
    ] {
        assert_eq!(tls(url), TlsMode::VerifyFull, "{url}");
    }
    assert_eq!(
        tls("redshift://u@127.0.0.1/dev?sslmode=require"),
        TlsMode::Require
    );
}

#[test]
fn an_explicit_sslmode_wins_then_pgsslmode() {
    let tls = |url: &str, env: &[(&str, &str)]| server(&parse_in(url, env).unwrap()).tls;
    let remote = "postgres://u@db.example.com/x";
    let local = "postgres://u@127.0.0.1/x";
    assert_eq!(
        tls(&format!("{remote}?sslmode=disable"), &[]),
        TlsMode::Disable
    );
    assert_eq!(
        tls(&format!("{local}?sslmode=verify-full"), &[]),
        TlsMode::VerifyFull
    );
    assert_eq!(
        tls(&format!("{local}?ssl-mode=require"), &[]),
        TlsMode::Require
    );
    assert_eq!(tls(&format!("{local}?sslmode=allow"), &[]), TlsMode::Prefer);
    assert_eq!(
        tls(&format!("{local}?sslmode=prefer"), &[]),
        TlsMode::Prefer
    );
    assert_eq!(
        tls(&format!("{local}?sslmode=verify-ca"), &[]),
        TlsMode::VerifyCa
    );
    // The URL wins over PGSSLMODE.
    assert_eq!(
        tls(
            &format!("{remote}?sslmode=disable"),
            &[("PGSSLMODE", "verify-full")]
        ),
        TlsMode::Disable
    );
    // PGSSLMODE when the URL says nothing, local or not.
    for url in [remote, local, "redshift://u@cluster/dev"] {
        assert_eq!(
            tls(url, &[("PGSSLMODE", "verify-full")]),
            TlsMode::VerifyFull
        );
        assert_eq!(tls(url, &[("PGSSLMODE", "disable")]), TlsMode::Disable);
        // Empty counts as unset.
        assert_eq!(tls(url, &[("PGSSLMODE", " ")]), tls(url, &[]));
    }
    // A bad PGSSLMODE names the variable, a bad sslmode says what is accepted.
    let err = parse_in(remote, &[("PGSSLMODE", "sometimes")]).unwrap_err();
    assert_eq!(err.variable(), Some("PGSSLMODE"));
    let err = config(&[("WAREHOUSE_URL", remote), ("PGSSLMODE", "sometimes")]).unwrap_err();
    assert_eq!(err.variable, "PGSSLMODE");
    assert!(err.to_string().contains("verify-full"), "{err}");
    let err = parse(&format!("{remote}?sslmode=sometimes")).unwrap_err();
    assert!(err.to_string().contains("verify-full"), "{err}");
    // An unused PGSSLMODE does not matter to SQLite.
    assert!(parse_in("sqlite://./w.db", &[("PGSSLMODE", "sometimes")]).is_ok());
    // Names are libpq's.
    assert_eq!("VERIFY-FULL".parse::<TlsMode>(), Ok(TlsMode::VerifyFull));
    assert!("verify_full".parse::<TlsMode>().is_err());
    assert_eq!(TlsMode::VerifyCa.to_string(), "verify-ca");
}

#[test]
fn the_root_certificate_comes_from_the_url_or_the_environment() {
    let cert = |url: &str, env: &[(&str, &str)]| {
        server(&parse_in(url, env).unwrap()).ssl_root_cert.clone()
    };
    let url = "postgres://u@db.example.com/x?sslmode=verify-full";
    assert_eq!(cert(url, &[]), None);
    assert_eq!(
        cert(&format!("{url}&sslrootcert=/etc/ssl/rds.pem"), &[]),
        Some(PathBuf::from("/etc/ssl/rds.pem"))
    );
    assert_eq!(
        cert(url, &[("WAREHOUSE_SSL_ROOT_CERT", "/opt/ca.pem")]),
        Some(PathBuf::from("/opt/ca.pem"))
    );
    assert_eq!(
        cert(
            &format!("{url}&sslrootcert=%2Fetc%2Fssl%2Frds.pem"),
            &[("WAREHOUSE_SSL_ROOT_CERT", "/opt/ca.pem")]
        ),
        Some(PathBuf::from("/etc/ssl/rds.pem"))
    );
    // Kept by to_url, so a URL handed on still says it.
    let conn = parse_in(url, &[("WAREHOUSE_SSL_ROOT_CERT", "/opt/my ca.pem")]).unwrap();
    assert_eq!(parse(&conn.to_url()).unwrap(), conn);
    // A secret's connection takes it from the environment too.
    let secret = r#"{"host":"db","username":"u","password":"p"}"#;
    let env = vars(&[
        ("WAREHOUSE_SSL_ROOT_CERT", "/opt/ca.pem"),
        ("PGSSLMODE", "verify-full"),
    ]);
    let conn = WarehouseConnection::from_secret(secret, |k| env.get(k).cloned()).unwrap();
    assert_eq!(
        server(&conn).ssl_root_cert,
        Some(PathBuf::from("/opt/ca.pem"))
    );
    assert_eq!(server(&conn).tls, TlsMode::VerifyFull);
    // And the configuration keeps them for a secret read later.
    let c = config(&[("WAREHOUSE_SSL_ROOT_CERT", "/opt/ca.pem")]).unwrap();
    let c = c.with_warehouse_url("postgres://u@db/x".into()).unwrap();
    assert_eq!(
        server(&c.warehouse).ssl_root_cert,
        Some(PathBuf::from("/opt/ca.pem"))
    );
}

// ---------------------------------------------------------------------------
// Hosts, ports, parameters

#[test]
fn ports_default_per_kind() {
    let port = |url: &str| server(&parse(url).unwrap()).port;
    assert_eq!(port("postgres://u@db/x"), 5432);
    assert_eq!(port("postgres://u@db:6543/x"), 6543);
    assert_eq!(port("redshift://u@cluster/dev"), 5439);
    assert_eq!(port("redshift://u@cluster:5440/dev"), 5440);
    assert_eq!(port("redshift://u@[::1]/dev"), 5439);
    assert_eq!(port("redshift://u@[::1]:6000/dev"), 6000);
    for bad in [
        "postgres://u@db:0/x",
        "postgres://u@db:65536/x",
        "postgres://u@db:x/x",
    ] {
        let err = parse(bad).unwrap_err();
        assert!(err.to_string().contains("port"), "{bad}: {err}");
    }
}

#[test]
fn fields_are_decoded() {
    let conn =
        parse("postgresql://%C3%A9tl%40corp:p%2Fw@[::1]:6543/my%20db?application_name=mdp%20load")
            .unwrap();
    assert_eq!(conn.kind(), WarehouseKind::Postgres);
    let t = server(&conn);
    assert_eq!(t.host, "::1");
    assert_eq!(t.port, 6543);
    assert_eq!(t.user, "étl@corp");
    assert_eq!(t.password.as_ref().map(Secret::expose), Some("p/w"));
    assert_eq!(t.database.as_deref(), Some("my db"));
    assert_eq!(t.application_name.as_deref(), Some("mdp load"));
    assert_eq!(parse(&conn.to_url()).unwrap(), conn);
    assert_eq!(
        conn.redacted(),
        "postgres://%C3%A9tl%40corp:***@[::1]:6543/my%20db?sslmode=disable&application_name=mdp+load"
    );

    // User and password as query parameters; no database.
    let conn = parse("postgres://db.example.com?user=etl&password=pw%26x").unwrap();
    let t = server(&conn);
    assert_eq!((t.user.as_str(), t.database.as_deref()), ("etl", None));
    assert_eq!(t.password.as_ref().map(Secret::expose), Some("pw&x"));
    assert_eq!(parse(&conn.to_url()).unwrap(), conn);

    // A Unix socket directory as a percent-encoded host.
    let conn = parse("postgres://etl@%2Fvar%2Frun%2Fpostgresql/x").unwrap();
    assert_eq!(server(&conn).host, "/var/run/postgresql");
    assert_eq!(parse(&conn.to_url()).unwrap(), conn);
}

#[test]
fn to_url_names_everything_explicitly() {
    let conn = parse("postgres://etl:p%40ss@db.internal/market").unwrap();
    assert_eq!(
        conn.to_url(),
        "postgres://etl:p%40ss@db.internal:5432/market?sslmode=verify-full"
    );
    assert_eq!(
        conn.redacted(),
        "postgres://etl:***@db.internal:5432/market?sslmode=verify-full"
    );
    let conn = parse("redshift://u@127.0.0.1/dev").unwrap();
    assert_eq!(
        conn.to_url(),
        "redshift://u@127.0.0.1:5439/dev?sslmode=verify-full"
    );
    assert_eq!(conn.redacted(), conn.to_url());
}

#[test]
fn malformed_urls_say_what_is_wrong() {
    let cases = [
        (
            "postgres://u@db/x?sslmode=require&bogus=1",
            "unknown query parameter bogus",
        ),
        (
            "postgres://u@db/x?connect_timeout=5",
            "unknown query parameter connect_timeout",
        ),
        (
            "postgres://u@db/x?sslmode=disable&sslmode=require",
            "more than once",
        ),
        (
            "postgres://u@db/x?ssl-mode=disable&sslmode=require",
            "more than once",
        ),
        ("postgres://db/x", "names no user"),
        ("postgres://u@/x", "no host"),
        ("postgres:///x", "no host"),
        ("postgres://u@db/x/y", "/DATABASE"),
        ("postgres://u@db/x#f", "fragment"),
        ("postgres://u:a@db/x?password=b", "password twice"),
        ("postgres://u@db/x?user=v", "user twice"),
        ("postgres://u@[::1/x", "IPv6"),
        (
            "mysql://u@db/x",
            "sqlite://PATH, postgres://… or redshift://…",
        ),
        ("mysql://u@db/x", "\"mysql\""),
        ("/tmp/warehouse.db", "not a warehouse URL"),
        ("sqlite://", "needs a path"),
        ("sqlite://./w.db?mode=ro", "mode can only be memory"),
        (
            "sqlite://./w.db?journal=wal",
            "unknown query parameter journal",
        ),
    ];
    for (url, needle) in cases {
        let err = parse(url).unwrap_err();
        let line = err.to_string();
        assert!(line.contains(needle), "{url}: {line}");
        assert!(!line.contains('\n'), "{line}");
    }
    // An unknown parameter that is not a plain name is not repeated.
    let err = parse("postgres://u:12?x%40y@db/x").unwrap_err();
    assert!(!err.to_string().contains("x@y"), "{err}");
}

// ---------------------------------------------------------------------------
// SQLite

#[test]
fn every_sqlite_url_the_repository_uses_still_parses() {
    let sqlite = |url: &str| match parse(url).unwrap() {
        WarehouseConnection::Sqlite(t) => t,
        other => panic!("{other:?}"),
    };
    let file = |path: &str| SqliteTarget {
        path: PathBuf::from(path),
        in_memory: false,
    };
    assert_eq!(
        sqlite("sqlite://./data/warehouse.db"),
        file("./data/warehouse.db")
    );
    assert_eq!(sqlite("sqlite://./data/w.db"), file("./data/w.db"));
    assert_eq!(
        sqlite("sqlite:///tmp/x/warehouse.db"),
        file("/tmp/x/warehouse.db")
    );
    assert_eq!(
        sqlite("sqlite://unused-the-secret-wins.db"),
        file("unused-the-secret-wins.db")
    );
    assert_eq!(sqlite("sqlite:data.db"), file("data.db"));
    let memory = |path: &str| SqliteTarget {
        path: PathBuf::from(path),
        in_memory: true,
    };
    assert_eq!(sqlite("sqlite::memory:"), memory(":memory:"));
    assert_eq!(sqlite("sqlite://:memory:"), memory(":memory:"));
    assert_eq!(sqlite("sqlite://shared?mode=memory"), memory("shared"));
    assert_eq!(
        sqlite("sqlite://shared?mode=memory&cache=shared"),
        memory("shared")
    );
    for url in [
        "sqlite://./data/warehouse.db",
        "sqlite:///tmp/x.db",
        "sqlite::memory:",
        "sqlite://shared?mode=memory",
    ] {
        let conn = parse(url).unwrap();
        assert_eq!(conn.kind(), WarehouseKind::Sqlite);
        assert_eq!(parse(&conn.to_url()).unwrap(), conn, "{url}");
        assert_eq!(conn.redacted(), conn.to_url());
        assert_eq!(conn.scrub("./data/warehouse.db"), "./data/warehouse.db");
        assert!(conn.password().is_none());
    }
    assert_eq!(
        parse("sqlite://./data/warehouse.db").unwrap().to_url(),
        "sqlite://./data/warehouse.db"
    );
    assert_eq!(
        parse("sqlite:///tmp/x.db").unwrap().to_url(),
        "sqlite:///tmp/x.db"
    );
}

#[test]
fn the_default_is_the_sqlite_file() {
    let c = config(&[]).unwrap();
    assert_eq!(c.warehouse_url, "sqlite://./data/warehouse.db");
    assert_eq!(
        c.warehouse,
        WarehouseConnection::Sqlite(SqliteTarget {
            path: PathBuf::from("./data/warehouse.db"),
            in_memory: false
        })
    );
    assert_eq!(c.warehouse_region, None);
}

// ---------------------------------------------------------------------------
// The RDS/Redshift secret

#[test]
fn secret_json_builds_the_target_from_its_fields() {
    let conn = WarehouseConnection::from_secret(
        r#"{"engine":"postgres","host":"db.internal","port":"6543","username":"etl","password":"pw","dbname":"market","dbInstanceIdentifier":"x"}"#,
        no_env,
    )
    .unwrap();
    let t = server(&conn);
    assert_eq!(
        (
            t.kind,
            t.host.as_str(),
            t.port,
            t.user.as_str(),
            t.database.as_deref(),
            t.tls
        ),
        (
            WarehouseKind::Postgres,
            "db.internal",
            6543,
            "etl",
            Some("market"),
            TlsMode::VerifyFull
        )
    );
    let rs = WarehouseConnection::from_secret(
        r#"{"engine":"redshift","host":"wh","username":"u","password":"p"}"#,
        no_env,
    )
    .unwrap();
    assert_eq!(
        rs.to_url(),
        "redshift://u:p@wh:5439/dev?sslmode=verify-full"
    );
    let pg = WarehouseConnection::from_secret(
        r#"{"engine":"aurora-postgresql","host":"::1","username":"u","password":"p"}"#,
        no_env,
    )
    .unwrap();
    assert_eq!(
        pg.to_url(),
        "postgres://u:p@[::1]:5432/postgres?sslmode=disable"
    );
    // A URL in a secret.
    let url = WarehouseConnection::from_secret(" postgres://u:p@h/d\n", no_env).unwrap();
    assert_eq!(url, parse("postgres://u:p@h/d").unwrap());

    for (text, needle) in [
        ("hunter2", "neither a URL nor the JSON"),
        (
            r#"{"host":"h","username":"u","password":"hunter2","port":"x"}"#,
            "port",
        ),
        (
            r#"{"host":"h","username":"u","password":"hunter2","port":70000}"#,
            "port",
        ),
        (r#"{"password":"hunter2""#, "line 1"),
        (
            r#"{"engine":"mysql","host":"h","username":"u","password":"hunter2"}"#,
            "mysql",
        ),
        (
            r#"{"username":"u","password":"hunter2"}"#,
            "host is missing",
        ),
        (
            r#"{"host":"h","password":"hunter2"}"#,
            "username is missing",
        ),
        (r#"{"host":"h","username":"u"}"#, "password is missing"),
        (
            r#"{"host":"h","username":"u","password":["hunter2"]}"#,
            "password is not a string",
        ),
        (r#"["hunter2"]"#, "neither a URL nor the JSON"),
    ] {
        let err = WarehouseConnection::from_secret(text, no_env).unwrap_err();
        let line = err.to_string();
        assert!(line.contains(needle), "{text}: {line}");
        assert!(!line.contains("hunter2"), "{line}");
    }
}
