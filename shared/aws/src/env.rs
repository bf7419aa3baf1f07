//! What every Lambda function builds once at cold start: the checked
//! configuration, one `SdkConfig` shared by all clients, the lake, and the
//! warehouse connection from Secrets Manager.

use std::sync::Arc;

use aws_config::SdkConfig;
use mdp_core::config::LakeUri;
use mdp_core::{Config, Lake, LocalStore, StageError};
use mdp_lambda::BatchContext;
use serde::Deserialize;

/// URL user info and path text: everything but unreserved characters escaped.
fn userinfo(s: &str) -> String {
    mdp_core::encoding::percent_encode(s, mdp_core::encoding::UNRESERVED)
}

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

impl LambdaEnv {
    /// Reads and checks the environment; a bad variable is one error line naming it.
    pub async fn load() -> Result<LambdaEnv, StageError> {
        let config = Config::from_env().map_err(|e| StageError::permanent(e.to_string()))?;
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
        value.clone().ok_or_else(|| {
            StageError::permanent(format!(
                "invalid configuration: {variable} is not set; this function needs it"
            ))
        })
    }

    /// The batch context of a function consuming `source` (its dead-letter
    /// queue is optional), handling `records_in_flight` records at a time.
    pub fn batch_context(
        &self,
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
        })
    }

    /// The configuration with the warehouse URL read from `WAREHOUSE_SECRET_ARN`
    /// when it is set (once per cold start), else as configured.
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
            .map_err(|e| {
                let message = format!("reading warehouse secret {arn}: {}", describe(&e));
                match crate::classify(&e) {
                    mdp_core::ErrorClass::Transient => StageError::transient(message),
                    mdp_core::ErrorClass::Permanent => StageError::permanent(message),
                }
            })?;
        let text = secret.secret_string().ok_or_else(|| {
            StageError::permanent(format!("warehouse secret {arn} has no string value"))
        })?;
        let url = warehouse_url_from_secret(text)
            .map_err(|why| StageError::permanent(format!("warehouse secret {arn}: {why}")))?;
        self.config
            .with_warehouse_url(url)
            .map_err(|e| StageError::permanent(e.to_string()))
    }
}

/// The standard RDS/Redshift secret JSON.
#[derive(Deserialize)]
struct DatabaseSecret {
    #[serde(default)]
    engine: Option<String>,
    host: String,
    #[serde(default)]
    port: Option<serde_json::Value>,
    username: String,
    password: String,
    #[serde(default)]
    dbname: Option<String>,
}

/// A warehouse URL from a secret: either a URL string, or the standard JSON
/// (`engine`, `host`, `port`, `username`, `password`, `dbname`). Never puts
/// the secret's text into an error.
pub fn warehouse_url_from_secret(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return if trimmed.contains("://") {
            Ok(trimmed.to_string())
        } else {
            Err(
                "is neither a URL nor the JSON {engine, host, port, username, password, dbname}"
                    .into(),
            )
        };
    }
    let s: DatabaseSecret = serde_json::from_str(trimmed)
        .map_err(|e| format!("is not the JSON {{engine, host, port, username, password, dbname}} (error at line {}, column {})", e.line(), e.column()))?;
    let scheme = match s.engine.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("redshift") => "redshift",
        None | Some("postgres") | Some("postgresql") | Some("aurora-postgresql") => "postgres",
        Some(other) => return Err(format!("engine {other:?} is not postgres or redshift")),
    };
    let default_port = if scheme == "redshift" { 5439 } else { 5432 };
    let port = match &s.port {
        None => default_port,
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().ok_or("port is not a whole number")? as u16
        }
        Some(serde_json::Value::String(p)) => {
            p.parse().map_err(|_| "port is not a number".to_string())?
        }
        Some(_) => return Err("port is not a number".into()),
    };
    let db = s.dbname.unwrap_or_else(|| {
        if scheme == "redshift" {
            "dev".into()
        } else {
            "postgres".into()
        }
    });
    Ok(format!(
        "{scheme}://{}:{}@{}:{port}/{}",
        userinfo(&s.username),
        userinfo(&s.password),
        s.host,
        userinfo(&db)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_secret_json_becomes_a_url_with_escaped_credentials() {
        let url = warehouse_url_from_secret(
            r#"{"engine":"postgres","host":"db.internal","port":5432,"username":"etl","password":"p@ss/w:rd","dbname":"market"}"#,
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://etl:p%40ss%2Fw%3Ard@db.internal:5432/market"
        );
        let rs = warehouse_url_from_secret(
            r#"{"engine":"redshift","host":"wh","username":"u","password":"p"}"#,
        )
        .unwrap();
        assert_eq!(rs, "redshift://u:p@wh:5439/dev");
        assert_eq!(
            warehouse_url_from_secret("postgres://u:p@h/d").unwrap(),
            "postgres://u:p@h/d"
        );
    }

    #[test]
    fn bad_secrets_are_described_without_their_contents() {
        for text in [
            "hunter2",
            r#"{"host":"h","username":"u","password":"hunter2","port":"x"}"#,
            r#"{"password":"hunter2""#,
            r#"{"engine":"mysql","host":"h","username":"u","password":"hunter2"}"#,
        ] {
            let err = warehouse_url_from_secret(text).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
