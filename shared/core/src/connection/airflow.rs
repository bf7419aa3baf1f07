//! The Airflow deployment's warehouse settings: `ENVIRONMENT` (development,
//! staging or production) selects `{DEV,STAGING,PROD}_WAREHOUSE_*`. Apart
//! from URL parsing because these come as separate variables, each named in
//! its own error, with Airflow's defaults.

use std::str::FromStr;

use super::url::checked_host;
use super::{ConnectionError, ServerParts, TlsEnv, WarehouseConnection, WarehouseKind, trimmed};

/// Which Airflow environment `ENVIRONMENT` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AirflowEnvironment {
    Development,
    Staging,
    Production,
}

/// The names of one Airflow environment's warehouse settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AirflowVariables {
    pub kind: &'static str,
    pub host: &'static str,
    pub port: &'static str,
    pub database: &'static str,
    pub schema: &'static str,
    pub user: &'static str,
    pub password: &'static str,
    pub region: &'static str,
}

macro_rules! airflow_variables {
    ($prefix:literal) => {
        AirflowVariables {
            kind: concat!($prefix, "_WAREHOUSE_TYPE"),
            host: concat!($prefix, "_WAREHOUSE_HOST"),
            port: concat!($prefix, "_WAREHOUSE_PORT"),
            database: concat!($prefix, "_WAREHOUSE_DATABASE"),
            schema: concat!($prefix, "_WAREHOUSE_SCHEMA"),
            user: concat!($prefix, "_WAREHOUSE_USER"),
            password: concat!($prefix, "_WAREHOUSE_PASSWORD"),
            region: concat!($prefix, "_WAREHOUSE_REGION"),
        }
    };
}

const DEV_VARIABLES: AirflowVariables = airflow_variables!("DEV");
const STAGING_VARIABLES: AirflowVariables = airflow_variables!("STAGING");
const PROD_VARIABLES: AirflowVariables = airflow_variables!("PROD");

/// The variable selecting the Airflow settings.
pub const ENVIRONMENT: &str = "ENVIRONMENT";

impl AirflowEnvironment {
    /// `DEV`, `STAGING` or `PROD`.
    pub fn prefix(self) -> &'static str {
        match self {
            AirflowEnvironment::Development => "DEV",
            AirflowEnvironment::Staging => "STAGING",
            AirflowEnvironment::Production => "PROD",
        }
    }

    pub fn variables(self) -> &'static AirflowVariables {
        match self {
            AirflowEnvironment::Development => &DEV_VARIABLES,
            AirflowEnvironment::Staging => &STAGING_VARIABLES,
            AirflowEnvironment::Production => &PROD_VARIABLES,
        }
    }

    /// The Airflow deployment's default `*_WAREHOUSE_TYPE`.
    fn default_kind(self) -> WarehouseKind {
        match self {
            AirflowEnvironment::Development => WarehouseKind::Postgres,
            AirflowEnvironment::Staging | AirflowEnvironment::Production => WarehouseKind::Redshift,
        }
    }
}

impl FromStr for AirflowEnvironment {
    type Err = ();
    fn from_str(s: &str) -> Result<AirflowEnvironment, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" => Ok(AirflowEnvironment::Development),
            "staging" => Ok(AirflowEnvironment::Staging),
            "production" => Ok(AirflowEnvironment::Production),
            _ => Err(()),
        }
    }
}

/// The Airflow deployment's warehouse settings: `ENVIRONMENT` (development,
/// staging or production) selects `{DEV,STAGING,PROD}_WAREHOUSE_{TYPE,HOST,
/// PORT,DATABASE,SCHEMA,USER,PASSWORD,REGION}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AirflowWarehouse {
    pub environment: AirflowEnvironment,
    pub connection: WarehouseConnection,
    /// `*_WAREHOUSE_SCHEMA`, as set (checked by the configuration).
    pub schema: Option<String>,
    /// `*_WAREHOUSE_REGION`, kept for information.
    pub region: Option<String>,
}

impl AirflowWarehouse {
    /// None when `ENVIRONMENT` is not set. `TYPE` defaults as in Airflow
    /// (postgres in development, redshift in staging and production), the
    /// port to the kind's; host and user are required. `lookup` also gives
    /// `PGSSLMODE` and `WAREHOUSE_SSL_ROOT_CERT`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<AirflowWarehouse>, ConnectionError> {
        let Some(name) = trimmed(&lookup, ENVIRONMENT) else {
            return Ok(None);
        };
        let environment: AirflowEnvironment =
            name.parse().map_err(|()| ConnectionError::Setting {
                variable: ENVIRONMENT,
                value: name.clone(),
                expected: "development, staging or production (selects the Airflow warehouse settings); or set WAREHOUSE_URL".into(),
            })?;
        let vars = environment.variables();
        let get = |variable: &str| trimmed(&lookup, variable);
        let required = |variable: &'static str| {
            get(variable).ok_or_else(|| ConnectionError::Setting {
                variable,
                value: String::new(),
                expected: format!(
                    "required when ENVIRONMENT={} (the Airflow warehouse settings); or set WAREHOUSE_URL",
                    name.to_ascii_lowercase()
                ),
            })
        };

        let kind = match get(vars.kind) {
            None => environment.default_kind(),
            Some(t) => match t.to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => WarehouseKind::Postgres,
                "redshift" => WarehouseKind::Redshift,
                _ => {
                    return Err(ConnectionError::Setting {
                        variable: vars.kind,
                        value: t,
                        expected: "postgres, postgresql or redshift".into(),
                    });
                }
            },
        };
        let host_value = required(vars.host)?;
        let host = checked_host(&host_value).ok_or_else(|| ConnectionError::Setting {
            variable: vars.host,
            value: host_value.clone(),
            expected: "a host name or IP address".into(),
        })?;
        let port = match get(vars.port) {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                ConnectionError::Setting {
                    variable: vars.port,
                    value: p.clone(),
                    expected: "a port number from 1 to 65535".into(),
                }
            })?),
        };
        let user = required(vars.user)?;
        // Not trimmed: spaces may be part of a password.
        let password = lookup(vars.password).filter(|p| !p.is_empty());
        let connection = ServerParts {
            kind,
            host,
            port,
            user,
            password,
            database: get(vars.database),
            tls: None,
            ssl_root_cert: None,
            application_name: None,
        }
        .finish(&TlsEnv::from_lookup(&lookup))?;
        Ok(Some(AirflowWarehouse {
            environment,
            connection: WarehouseConnection::Server(connection),
            schema: get(vars.schema),
            region: get(vars.region),
        }))
    }
}
