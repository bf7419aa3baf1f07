//! AWS adapters of the mdp-core ports: the lake on S3 ([`S3Store`], an
//! [`mdp_core::ObjectStore`]) and the stage queues on SQS ([`SqsQueue`], an
//! [`mdp_core::queue::Queue`]). Its tests run against a local moto server
//! (mdp-devtools).
//!
//! Build one [`SdkConfig`] per process with [`load_sdk_config`] at cold start
//! and the clients from it ([`s3_client`], [`sqs_client`]); clients are cheap
//! to clone and share one connection pool.
//!
//! `AWS_ENDPOINT_URL` (DESIGN.md section 7) is read by aws-config itself (its
//! `endpoint_url` provider: the environment variable, then the profile's
//! `endpoint_url`), so every client then talks to that endpoint, and
//! [`s3_client`] switches S3 to path-style addressing.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use mdp_core::ErrorClass;

pub mod dlq;
mod env;
mod s3;
mod sqs;

pub use env::{LambdaEnv, open_lake, warehouse_url_from_secret};
pub use s3::S3Store;
pub use sqs::{MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, MAX_VISIBILITY_TIMEOUT, SqsQueue};

/// The region used when none is configured but an endpoint URL is (a local
/// S3/SQS accepts any region; the SDK refuses to sign without one).
pub const LOCAL_REGION: &str = "us-east-1";

/// The process's AWS configuration from the usual sources (environment,
/// profile, Lambda/ECS/IMDS credentials), honouring `AWS_ENDPOINT_URL`.
/// Call it once at cold start and share the result by reference.
pub async fn load_sdk_config() -> SdkConfig {
    let cfg = aws_config::defaults(BehaviorVersion::latest()).load().await;
    if cfg.region().is_none() && cfg.endpoint_url().is_some() {
        return cfg
            .into_builder()
            .region(Region::from_static(LOCAL_REGION))
            .build();
    }
    cfg
}

/// A configuration for a local endpoint (moto, LocalStack): region
/// `us-east-1`, static credentials `test`/`test`, and `endpoint`. Reads no
/// credentials from the environment and changes no environment variable.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::from_static(LOCAL_REGION))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "mdp-aws-test",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// The S3 client; path-style addressing (`http://host/bucket/key`) when an
/// endpoint URL is configured, as local S3 servers need.
pub fn s3_client(cfg: &SdkConfig) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(cfg);
    if cfg.endpoint_url().is_some() {
        builder = builder.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// The SQS client.
pub fn sqs_client(cfg: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(cfg)
}

/// Error codes that mean "try again later" whatever their HTTP status
/// (throttling, server-side trouble, expired temporary credentials).
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "KmsThrottled",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestTimeTooSkewed",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// Classifies an SDK error (after the SDK's own retries): timeouts,
/// connection failures, unreadable responses, HTTP 429/5xx and throttling
/// codes are transient; any other service error (4xx: missing queue,
/// invalid parameter, access denied…) and a request that could not even be
/// built are permanent.
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorClass {
    match err {
        SdkError::ConstructionFailure(_) => ErrorClass::Permanent,
        SdkError::DispatchFailure(f) if f.is_user() => ErrorClass::Permanent,
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or_default();
            if status == 429 || status >= 500 || TRANSIENT_CODES.contains(&code) {
                ErrorClass::Transient
            } else {
                ErrorClass::Permanent
            }
        }
        // Timeouts, dispatch (connection) failures, unreadable responses.
        _ => ErrorClass::Transient,
    }
}

/// One line describing an SDK error: `Code (HTTP status): message` for a
/// service error, the whole source chain otherwise.
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("unknown error");
            let status = ctx.raw().status().as_u16();
            match ctx.err().message() {
                Some(m) if !m.is_empty() => format!("{code} (HTTP {status}): {m}"),
                _ => format!("{code} (HTTP {status})"),
            }
        }
        _ => DisplayErrorContext(err).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::primitives::SdkBody;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;

    fn service_error(status: u16, code: &str) -> SdkError<SendMessageBatchError, HttpResponse> {
        SdkError::service_error(
            SendMessageBatchError::generic(
                ErrorMetadata::builder().code(code).message("why").build(),
            ),
            HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn service_errors_are_classified_by_status_and_code() {
        use ErrorClass::*;
        for (status, code, class) in [
            (500, "InternalError", Transient),
            (503, "SlowDown", Transient),
            (429, "TooManyRequests", Transient),
            (400, "RequestThrottled", Transient),
            (400, "ThrottlingException", Transient),
            (400, "AWS.SimpleQueueService.NonExistentQueue", Permanent),
            (400, "InvalidParameterValue", Permanent),
            (403, "AccessDenied", Permanent),
            (404, "NoSuchBucket", Permanent),
        ] {
            assert_eq!(classify(&service_error(status, code)), class, "{code}");
        }
        assert_eq!(
            describe(&service_error(400, "InvalidParameterValue")),
            "InvalidParameterValue (HTTP 400): why"
        );
    }

    #[test]
    fn other_sdk_errors_are_classified() {
        let timeout: SdkError<SendMessageBatchError, HttpResponse> =
            SdkError::timeout_error("too slow");
        assert_eq!(classify(&timeout), ErrorClass::Transient);
        let io: SdkError<SendMessageBatchError, HttpResponse> = SdkError::dispatch_failure(
            aws_sdk_s3::error::ConnectorError::io("connection refused".into()),
        );
        assert_eq!(classify(&io), ErrorClass::Transient);
        let built: SdkError<SendMessageBatchError, HttpResponse> =
            SdkError::construction_failure("missing field");
        assert_eq!(classify(&built), ErrorClass::Permanent);
    }
}
