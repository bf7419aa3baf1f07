//! The lake on S3 (`s3://BUCKET/PREFIX`, DESIGN.md section 4).

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use mdp_core::config::LakeUri;
use mdp_core::lake::check_key;
use mdp_core::{ErrorClass, ObjectStore, StoreError};

use crate::{classify, describe};

/// An [`ObjectStore`] on one S3 bucket, under a key prefix.
///
/// Lake keys are relative to `prefix`: the object of key `raw/x.json` in a
/// store with prefix `lake` is `s3://BUCKET/lake/raw/x.json`. Keys are sent
/// to S3 byte for byte (the SDK percent-encodes them on the wire only), so
/// `ticker=%5EGSPC` stays `ticker=%5EGSPC` in the bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Without leading or trailing `/`; empty for the bucket root.
    prefix: String,
    /// `MaxKeys` per ListObjectsV2 page; `None` leaves S3's default (1000).
    page_size: Option<i32>,
}

impl S3Store {
    /// The lake at `s3://bucket/prefix`; leading and trailing `/` of the
    /// prefix are ignored, and an empty prefix is the bucket root.
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> S3Store {
        S3Store {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
            page_size: None,
        }
    }

    /// The same as [`S3Store::new`], for the parts of an `s3://BUCKET/PREFIX` lake URI.
    pub fn from_uri(
        client: Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> S3Store {
        S3Store::new(client, bucket, prefix)
    }

    /// The store for a configured lake URI, or `None` when it is not `s3://`.
    pub fn from_lake_uri(client: Client, uri: &LakeUri) -> Option<S3Store> {
        match uri {
            LakeUri::S3 { bucket, prefix } => Some(S3Store::new(client, bucket, prefix)),
            LakeUri::File(_) => None,
        }
    }

    /// Lists with at most `max_keys` keys per ListObjectsV2 page (S3 caps and
    /// defaults it to 1000); smaller pages only make listing slower.
    pub fn with_page_size(mut self, max_keys: i32) -> S3Store {
        self.page_size = Some(max_keys.clamp(1, 1000));
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The S3 object key of a lake key (or of a lake key prefix).
    fn object_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn s3_uri(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.object_key(key))
    }

    /// Maps an SDK error on `key` to a [`StoreError::Backend`] whose message
    /// names the S3 operation, the object, and — for a missing bucket or a
    /// refused access — the bucket and that retrying will not help.
    ///
    /// A missing bucket or denied access is `Refused` (permanent: dead-letter,
    /// do not retry); other service errors are `Backend` unless their class is
    /// permanent.
    fn backend_error<E>(&self, op: &str, key: &str, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let what = describe(&err);
        let refused = matches!(
            err.code(),
            Some(
                "NoSuchBucket"
                    | "AccessDenied"
                    | "AllAccessDisabled"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
            )
        ) || classify(&err) == ErrorClass::Permanent;
        let message = match err.code() {
            Some("NoSuchBucket") => format!(
                "S3 {op} {}: bucket {:?} does not exist ({what}); check MARKET_DATA_LAKE_URI, \
                 retrying will not help",
                self.s3_uri(key),
                self.bucket
            ),
            Some("AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId")
            | Some("SignatureDoesNotMatch") => format!(
                "S3 {op} {}: access to bucket {:?} denied ({what}); check the credentials and \
                 the role's policy, retrying will not help",
                self.s3_uri(key),
                self.bucket
            ),
            _ => {
                let class = match classify(&err) {
                    ErrorClass::Transient => "",
                    ErrorClass::Permanent => ", retrying will not help",
                };
                format!("S3 {op} {}: {what}{class}", self.s3_uri(key))
            }
        };
        if refused {
            StoreError::Refused {
                key: key.to_string(),
                message,
            }
        } else {
            StoreError::Backend {
                key: key.to_string(),
                message,
            }
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(err) => {
                let missing_key = err.as_service_error().is_some_and(|e| e.is_no_such_key())
                    || (err
                        .raw_response()
                        .is_some_and(|r| r.status().as_u16() == 404)
                        && err.code() != Some("NoSuchBucket"));
                if missing_key {
                    return Ok(None);
                }
                return Err(self.backend_error("GetObject", key, err));
            }
        };
        let bytes = out.body.collect().await.map_err(|e| StoreError::Backend {
            key: key.to_string(),
            message: format!("S3 GetObject {}: reading the body: {e}", self.s3_uri(key)),
        })?;
        Ok(Some(bytes.to_vec()))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        check_key(key)?;
        let content_type = if key.ends_with(".json") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        // One PutObject: S3 makes an object visible only once it is whole, so
        // a reader gets the old object or the complete new one, never a part
        // (the atomic put the ObjectStore port promises). No multipart upload:
        // lake objects are far below PutObject's 5 GiB.
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|err| self.backend_error("PutObject", key, err))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        // DeleteObject succeeds for a missing key too.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|err| self.backend_error("DeleteObject", key, err))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // With a store prefix, the S3 prefix always ends in `prefix/`: a store
        // at `lake/a` never sees `lake/ab/…`.
        let full_prefix = self.object_key(prefix);
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full_prefix)
            .set_max_keys(self.page_size)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.backend_error("ListObjectsV2", prefix, err))?;
            for object in page.contents() {
                if let Some(key) = object.key().and_then(|k| k.strip_prefix(&strip)) {
                    keys.push(key.to_string());
                }
            }
        }
        // S3 lists in UTF-8 byte order already; sorting keeps the port's
        // promise for any S3-compatible server.
        keys.sort();
        Ok(keys)
    }

    fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(prefix: &str) -> S3Store {
        let cfg = crate::sdk_config_for("http://127.0.0.1:9").await;
        S3Store::new(crate::s3_client(&cfg), "bucket", prefix)
    }

    #[tokio::test]
    async fn keys_are_joined_under_the_prefix() {
        let s = store("/lake/a/").await;
        assert_eq!(s.prefix(), "lake/a");
        assert_eq!(s.object_key("raw/x.json"), "lake/a/raw/x.json");
        assert_eq!(s.object_key(""), "lake/a/");
        assert_eq!(s.uri(), "s3://bucket/lake/a");
        let root = store("").await;
        assert_eq!(root.object_key("raw/x.json"), "raw/x.json");
        assert_eq!(root.uri(), "s3://bucket/");
    }

    #[tokio::test]
    async fn invalid_keys_are_rejected_before_any_request() {
        // The endpoint is closed: reaching it would be a Backend error.
        let s = store("lake").await;
        for key in ["../x", "/x", "a//b", ""] {
            let err = s.put(key, b"x".to_vec()).await.unwrap_err();
            assert!(matches!(err, StoreError::InvalidKey { .. }), "{key}: {err}");
            let err = s.get(key).await.unwrap_err();
            assert!(matches!(err, StoreError::InvalidKey { .. }), "{key}: {err}");
        }
    }

    #[test]
    fn lake_uri_maps_to_a_store() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = crate::s3_client(&rt.block_on(crate::sdk_config_for("http://127.0.0.1:9")));
        let uri: LakeUri = "s3://b/p/q/".parse().unwrap();
        let s = S3Store::from_lake_uri(client.clone(), &uri).unwrap();
        assert_eq!((s.bucket(), s.prefix()), ("b", "p/q"));
        assert_eq!(s.uri(), uri.to_string());
        assert!(S3Store::from_lake_uri(client, &"file://./x".parse().unwrap()).is_none());
    }
}
