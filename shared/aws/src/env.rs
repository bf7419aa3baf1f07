//! What every Lambda function builds once at cold start: the checked
//! configuration, one `SdkConfig` shared by all clients, the lake, and the
//! warehouse connection from Secrets Manager.

use std::sync::Arc;

use aws_config::SdkConfig;
use mdp_core::config::{ConfigError, LakeUri};
use mdp_core::connection::{ConnectionError, WarehouseConnection};
use mdp_core::queue::{ServiceError, StageName};
use mdp_core::{Config, ErrorClass, Lake, LocalStore, StageError};
use mdp_lambda::BatchContext;

use crate::{S3Store, SqsQueue, describe, s3_client, sqs_client};

pub struct LambdaEnv {
    pub config: Config,
    pub sdk: SdkConfig,
    pub lake: Lake,
    /// One SQS client for everything the function sends or reschedules.
    pub queue: Arc<SqsQueue>,
}

/// The lake the configuration names: a local folder or S3.
pub fn open_lake(config: &Config, sdk: &SdkConfig) -> Lake {
    match &config.lake_uri {
        LakeUri::File(path) => Lake::new(Arc::new(LocalStore::new(path))),
        LakeUri::S3 { bucket, prefix } => Lake::new(Arc::new(S3Store::new(
            s3_client(sdk),
            bucket.clone(),
            prefix.clone(),
        ))),
    }
}

/// Why a function cannot start: its configuration (never retried: the
/// same environment fails the same way), or its warehouse secret.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid configuration: {0} is not set; this function needs it")]
    Missing(String),
    #[error("reading warehouse secret {arn}")]
    SecretRead {
        arn: String,
        class: ErrorClass,
        #[source]
        source: ServiceError,
    },
    #[error("warehouse secret {arn} has no string value")]
    SecretNotText { arn: String },
    #[error("warehouse secret {arn}")]
    SecretContent {
        arn: String,
        #[source]
        source: ConnectionError,
    },
}

impl EnvError {
    pub fn class(&self) -> ErrorClass {
        match self {
            EnvError::SecretRead { class, .. } => *class,
            _ => ErrorClass::Permanent,
        }
    }
}

impl From<EnvError> for StageError {
    fn from(e: EnvError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

impl LambdaEnv {
    /// Reads and checks the environment; a bad variable is one error line naming it.
    pub async fn load() -> Result<LambdaEnv, StageError> {
        let config = Config::from_env().map_err(EnvError::from)?;
        let sdk = crate::load_sdk_config().await;
        Ok(LambdaEnv::new(config, sdk))
    }

    /// From an already checked configuration and AWS configuration.
    pub fn new(config: Config, sdk: SdkConfig) -> LambdaEnv {
        let lake = open_lake(&config, &sdk);
        let queue = Arc::new(SqsQueue::new(sqs_client(&sdk)));
        LambdaEnv {
            config,
            sdk,
            lake,
            queue,
        }
    }

    /// A variable the function cannot run without.
    pub fn required(&self, value: &Option<String>, variable: &str) -> Result<String, StageError> {
        value
            .clone()
            .ok_or_else(|| EnvError::Missing(variable.to_string()).into())
    }

    /// The batch context of `stage`'s function consuming `source` (its
    /// dead-letter queue is optional), handling `records_in_flight` records at
    /// a time, recording transient failures in the lake.
    pub fn batch_context(
        &self,
        stage: StageName,
        source: &Option<String>,
        variable: &str,
        dead_letter: &Option<String>,
        records_in_flight: usize,
    ) -> Result<BatchContext, StageError> {
        Ok(BatchContext {
            queue: self.queue.clone(),
            source_queue_url: self.required(source, variable)?,
            dead_letter_queue_url: dead_letter.clone(),
            records_in_flight,
            stage,
            lake: Some(self.lake.clone()),
        })
    }

    /// The configuration with the warehouse read from `WAREHOUSE_SECRET_ARN`
    /// when it is set (once per cold start), else as configured. TLS and the
    /// root certificate follow `PGSSLMODE` and `WAREHOUSE_SSL_ROOT_CERT` as
    /// read with the configuration.
    pub async fn warehouse_config(&self) -> Result<Config, StageError> {
        let Some(arn) = &self.config.warehouse_secret_arn else {
            return Ok(self.config.clone());
        };
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk);
        let secret = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| EnvError::SecretRead {
                arn: arn.clone(),
                class: crate::classify(&e),
                source: ServiceError(describe(&e)),
            })?;
        let text = secret
            .secret_string()
            .ok_or_else(|| EnvError::SecretNotText { arn: arn.clone() })?;
        let warehouse = WarehouseConnection::from_secret_with(text, &self.config.warehouse_tls_env)
            .map_err(|source| EnvError::SecretContent {
                arn: arn.clone(),
                source,
            })?;
        Ok(self
            .config
            .with_warehouse(warehouse)
            .map_err(EnvError::from)?)
    }
}

/// The warehouse URL a secret names (a URL, or the standard RDS/Redshift
/// JSON `engine, host, port, username, password, dbname`), as
/// [`WarehouseConnection::to_url`] writes it: port and `sslmode` explicit,
/// credentials percent-encoded; TLS as `PGSSLMODE` and
/// `WAREHOUSE_SSL_ROOT_CERT` of the process environment say. Never puts the
/// secret's text into an error.
pub fn warehouse_url_from_secret(text: &str) -> Result<String, String> {
    url_from_secret(text, |name| std::env::var(name).ok())
}

fn url_from_secret(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    WarehouseConnection::from_secret(text, lookup)
        .map(|c| c.to_url())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn standard_secret_json_becomes_a_url_with_escaped_credentials() {
        let url = url_from_secret(
            r#"{"engine":"postgres","host":"db.internal","port":5432,"username":"etl","password":"p@ss/w:rd","dbname":"market"}"#,
            no_env,
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://etl:p%40ss%2Fw%3Ard@db.internal:5432/market?sslmode=verify-full"
        );
        let rs = url_from_secret(
            r#"{"engine":"redshift","host":"wh","username":"u","password":"p"}"#,
            no_env,
        )
        .unwrap();
        assert_eq!(rs, "redshift://u:p@wh:5439/dev?sslmode=verify-full");
        assert_eq!(
            url_from_secret("postgres://u:p@h/d", no_env).unwrap(),
            "postgres://u:p@h:5432/d?sslmode=verify-full"
        );
        // The environment's TLS settings apply.
        let verify = |name: &str| match name {
            "PGSSLMODE" => Some("verify-full".to_string()),
            "WAREHOUSE_SSL_ROOT_CERT" => Some("/opt/rds.pem".to_string()),
            _ => None,
        };
        assert_eq!(
            url_from_secret("postgres://u:p@h/d", verify).unwrap(),
            "postgres://u:p@h:5432/d?sslmode=verify-full&sslrootcert=%2Fopt%2Frds.pem"
        );
        // The wrapper reads the process environment.
        if std::env::var_os("PGSSLMODE").is_none()
            && std::env::var_os("WAREHOUSE_SSL_ROOT_CERT").is_none()
        {
            assert_eq!(
                warehouse_url_from_secret("postgres://u:p@h/d").unwrap(),
                "postgres://u:p@h:5432/d?sslmode=verify-full"
            );
        }
    }

    #[test]
    fn the_secret_replaces_the_configured_warehouse() {
        let config = Config::from_lookup(|name| match name {
            "WAREHOUSE_URL" => Some("sqlite://unused.db".into()),
            "PGSSLMODE" => Some("verify-ca".into()),
            _ => None,
        })
        .unwrap();
        let secret = r#"{"host":"db.internal","username":"etl","password":"S3cr/et@pw"}"#;
        let warehouse =
            WarehouseConnection::from_secret_with(secret, &config.warehouse_tls_env).unwrap();
        let config = config.with_warehouse(warehouse).unwrap();
        assert_eq!(
            config.warehouse_kind,
            mdp_core::config::WarehouseKind::Postgres
        );
        assert_eq!(
            config.warehouse_url,
            "postgres://etl:S3cr%2Fet%40pw@db.internal:5432/postgres?sslmode=verify-ca"
        );
        assert!(!format!("{config:?}").contains("S3cr"));
    }

    #[test]
    fn bad_secrets_are_described_without_their_contents() {
        for text in [
            "hunter2",
            r#"{"host":"h","username":"u","password":"hunter2","port":"x"}"#,
            r#"{"password":"hunter2""#,
            r#"{"engine":"mysql","host":"h","username":"u","password":"hunter2"}"#,
        ] {
            let err = url_from_secret(text, no_env).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
            let err = WarehouseConnection::from_secret(text, no_env).unwrap_err();
            assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
        }
    }
}
