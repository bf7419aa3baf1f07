//! The Airflow deployment's warehouse settings through the configuration:
//! `ENVIRONMENT` selecting `{DEV,STAGING,PROD}_WAREHOUSE_*`, their defaults,
//! errors naming the variable (never the password), and `WAREHOUSE_URL`
//! winning over them.

mod common;

use std::collections::HashMap;

use common::{assert_hidden, config, parse, server};
use mdp_core::Config;
use mdp_core::config::ConfigError;
use mdp_core::connection::{Secret, WarehouseKind};

// ---------------------------------------------------------------------------
// The Airflow deployment's settings

fn airflow(prefix: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("HOST", "wh.internal"),
        ("USER", "warehouse_user"),
        ("PASSWORD", "warehouse_pass"),
        ("DATABASE", "market_data_warehouse"),
    ]
    .iter()
    .map(|(k, val)| (format!("{prefix}_WAREHOUSE_{k}"), val.to_string()))
    .collect();
    v.extend(
        extra
            .iter()
            .map(|(k, val)| (k.to_string(), val.to_string())),
    );
    v
}

fn config_of(pairs: &[(String, String)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = pairs.iter().cloned().collect();
    Config::from_lookup(|k| env.get(k).cloned())
}

#[test]
fn each_environment_reads_its_own_prefix() {
    for (environment, prefix, kind, port) in [
        ("development", "DEV", WarehouseKind::Postgres, 5432),
        ("Staging", "STAGING", WarehouseKind::Redshift, 5439),
        ("PRODUCTION", "PROD", WarehouseKind::Redshift, 5439),
    ] {
        let mut pairs = airflow(
            prefix,
            &[
                ("ENVIRONMENT", environment),
                ("WAREHOUSE_REDSHIFT_IAM_ROLE", "default"),
            ],
        );
        // Another environment's settings are not read.
        pairs.extend(
            airflow(if prefix == "DEV" { "PROD" } else { "DEV" }, &[])
                .into_iter()
                .map(|(k, _)| (k, "other".to_string())),
        );
        let c = config_of(&pairs).unwrap();
        let t = server(&c.warehouse);
        assert_eq!(t.kind, kind, "{environment}");
        assert_eq!(c.warehouse_kind, kind);
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.user.as_str(),
                t.database.as_deref()
            ),
            (
                "wh.internal",
                port,
                "warehouse_user",
                Some("market_data_warehouse")
            ),
        );
        assert_eq!(
            t.password.as_ref().map(Secret::expose),
            Some("warehouse_pass")
        );
        // The URL the warehouse crate reads names the same connection.
        assert_eq!(parse(&c.warehouse_url).unwrap(), c.warehouse);
        assert_eq!(c.warehouse_schema, "public");
    }
}

#[test]
fn airflow_type_port_schema_and_region() {
    let c = config_of(&airflow(
        "DEV",
        &[
            ("ENVIRONMENT", "development"),
            ("DEV_WAREHOUSE_TYPE", "Redshift"),
            ("DEV_WAREHOUSE_PORT", "5440"),
            ("DEV_WAREHOUSE_SCHEMA", "analytics"),
            ("DEV_WAREHOUSE_REGION", "eu-west-1"),
            ("WAREHOUSE_REDSHIFT_IAM_ROLE", "default"),
        ],
    ))
    .unwrap();
    assert_eq!(c.warehouse_kind, WarehouseKind::Redshift);
    assert_eq!(server(&c.warehouse).port, 5440);
    assert_eq!(c.warehouse_schema, "analytics");
    assert_eq!(c.warehouse_region.as_deref(), Some("eu-west-1"));
    assert!(
        c.warehouse_url
            .starts_with("redshift://warehouse_user:warehouse_pass@wh.internal:5440/")
    );

    // postgresql, as Airflow spells it; WAREHOUSE_SCHEMA wins over the Airflow schema.
    let c = config_of(&airflow(
        "PROD",
        &[
            ("ENVIRONMENT", "production"),
            ("PROD_WAREHOUSE_TYPE", "postgresql"),
            ("PROD_WAREHOUSE_SCHEMA", "analytics"),
            ("WAREHOUSE_SCHEMA", "mdp"),
        ],
    ))
    .unwrap();
    assert_eq!(c.warehouse_kind, WarehouseKind::Postgres);
    assert_eq!(c.warehouse_schema, "mdp");

    // A Redshift from the Airflow settings needs the COPY role like any other.
    let err = config_of(&airflow("PROD", &[("ENVIRONMENT", "production")])).unwrap_err();
    assert_eq!(err.variable, "WAREHOUSE_REDSHIFT_IAM_ROLE");
}

#[test]
fn airflow_errors_name_the_variable() {
    let role = ("WAREHOUSE_REDSHIFT_IAM_ROLE", "default");
    let without = |prefix: &str, env: &str, missing: &str, extra: &[(&str, &str)]| {
        let mut pairs = airflow(prefix, &[("ENVIRONMENT", env), role]);
        pairs.retain(|(k, _)| k != missing);
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        config_of(&pairs).unwrap_err()
    };
    let err = without("PROD", "production", "PROD_WAREHOUSE_HOST", &[]);
    assert_eq!(err.variable, "PROD_WAREHOUSE_HOST");
    assert!(
        err.to_string()
            .contains("required when ENVIRONMENT=production"),
        "{err}"
    );
    let err = without("STAGING", "staging", "STAGING_WAREHOUSE_USER", &[]);
    assert_eq!(err.variable, "STAGING_WAREHOUSE_USER");
    let err = without("DEV", "development", "", &[("DEV_WAREHOUSE_TYPE", "mysql")]);
    assert_eq!(err.variable, "DEV_WAREHOUSE_TYPE");
    assert!(
        err.to_string().contains("postgres, postgresql or redshift"),
        "{err}"
    );
    let err = without("DEV", "development", "", &[("DEV_WAREHOUSE_PORT", "54x")]);
    assert_eq!(err.variable, "DEV_WAREHOUSE_PORT");
    let err = without(
        "DEV",
        "development",
        "",
        &[("DEV_WAREHOUSE_HOST", "wh internal")],
    );
    assert_eq!(err.variable, "DEV_WAREHOUSE_HOST");
    let err = without("DEV", "development", "", &[("DEV_WAREHOUSE_SCHEMA", "a-b")]);
    assert_eq!(err.variable, "DEV_WAREHOUSE_SCHEMA");
    let err = without("DEV", "development", "", &[("PGSSLMODE", "never")]);
    assert_eq!(err.variable, "PGSSLMODE");
    for bad in ["dev", "prod", "test"] {
        let err = without("DEV", bad, "", &[]);
        assert_eq!(err.variable, "ENVIRONMENT", "{bad}");
        assert!(
            err.to_string()
                .contains("development, staging or production"),
            "{err}"
        );
    }
    // No password in any of them.
    let err = without(
        "PROD",
        "production",
        "PROD_WAREHOUSE_HOST",
        &[("PROD_WAREHOUSE_PASSWORD", "S3cr/et@pw:1")],
    );
    assert_hidden("S3cr/et@pw:1", "ConfigError", &err.to_string());
}

#[test]
fn airflow_password_with_reserved_characters() {
    let password = "S3cr/et@pw:1 ?#%";
    let c = config_of(&airflow(
        "DEV",
        &[
            ("ENVIRONMENT", "development"),
            ("DEV_WAREHOUSE_PASSWORD", password),
        ],
    ))
    .unwrap();
    assert_eq!(c.warehouse.password().map(Secret::expose), Some(password));
    assert_eq!(parse(&c.warehouse_url).unwrap(), c.warehouse);
    assert_hidden(password, "Config Debug", &format!("{c:?}"));
    assert_hidden(password, "redacted", &c.warehouse.redacted());
    assert_hidden(
        password,
        "redact_url",
        &mdp_core::config::redact_url(&c.warehouse_url),
    );
}

#[test]
fn warehouse_url_wins_over_the_airflow_settings() {
    let c = config_of(&airflow(
        "PROD",
        &[
            ("ENVIRONMENT", "production"),
            ("PROD_WAREHOUSE_SCHEMA", "analytics"),
            ("WAREHOUSE_URL", "postgres://etl@db.example.com/market"),
        ],
    ))
    .unwrap();
    assert_eq!(c.warehouse_url, "postgres://etl@db.example.com/market");
    assert_eq!(server(&c.warehouse).host, "db.example.com");
    assert_eq!(c.warehouse_schema, "public");
    assert_eq!(c.warehouse_region, None);
    // Not even a bad ENVIRONMENT matters then.
    let c = config(&[("ENVIRONMENT", "dev"), ("WAREHOUSE_URL", "sqlite://./w.db")]).unwrap();
    assert_eq!(c.warehouse_kind, WarehouseKind::Sqlite);
}
