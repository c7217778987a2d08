//! S3-API object store (AWS S3, MinIO, SeaweedFS, R2, ...) via aws-sdk-s3.
//!
//! Puts carry `If-None-Match: *` so an object is never overwritten; reads
//! are ranged GETs. Request checksums are computed only when an operation
//! requires them, which S3-compatible stores accept. Credentials come from
//! the configuration when given, else from the standard AWS chain
//! (environment, profile files, instance metadata).

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use bytes::{Bytes, BytesMut};

use super::{DeleteOutcome, ListPage, ObjectMeta, ObjectStore, StoreError};

/// Where and how to reach the bucket.
#[derive(Clone, Default)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing slash), may be empty.
    pub prefix: String,
    /// Endpoint URL for non-AWS stores, e.g. `http://127.0.0.1:8333`.
    pub endpoint: Option<String>,
    pub region: String,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`.
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// An S3 bucket (and prefix) as an object store.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

fn status_of<E, R>(e: &SdkError<E, R>) -> Option<u16>
where
    R: HasStatus,
{
    e.raw_response().map(HasStatus::status)
}

trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

fn describe<E: ProvideErrorMetadata + fmt::Debug, R: fmt::Debug>(e: &SdkError<E, R>) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("no message")
            )
        }
        SdkError::TimeoutError(_) => "request timed out".into(),
        SdkError::DispatchFailure(d) => format!("could not reach the store: {d:?}"),
        other => format!("{other:?}").chars().take(300).collect(),
    }
}

impl S3Store {
    /// Builds a client for `config`.
    pub async fn new(config: S3Config) -> Result<Self, StoreError> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(config.region.clone()));
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "streamhouse-config",
            ));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let prefix = config.prefix.trim_matches('/').to_string();
        Ok(S3Store {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket,
            prefix,
        })
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn strip(&self, full: &str) -> String {
        if self.prefix.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(&self.prefix)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(full)
                .to_string()
        }
    }

    /// Creates the bucket if it does not exist (used by tests and `serve`
    /// on fresh local S3 servers).
    pub async fn ensure_bucket(&self) -> Result<(), StoreError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::Unavailable(describe(&e).into())),
        }
    }
}

/// A GET's body as one contiguous buffer of about `len` bytes, refusing
/// more than `max`. Each piece is copied into a buffer sized once and
/// dropped as it arrives, so the client's read buffers are reused rather
/// than held until the end and copied again; a body that arrives in one
/// piece is kept as it is.
async fn read_body(mut body: ByteStream, len: usize, max: usize) -> Result<Bytes, StoreError> {
    let too_long = || {
        StoreError::Unavailable(format!("the store sent more than the {max} bytes asked").into())
    };
    let mut next = async || body.try_next().await.map_err(StoreError::unavailable);
    let Some(first) = next().await? else {
        return Ok(Bytes::new());
    };
    if first.len() > max {
        return Err(too_long());
    }
    let Some(mut piece) = next().await? else {
        return Ok(first);
    };
    let mut buf = BytesMut::with_capacity(len.max(first.len() + piece.len()).min(max));
    buf.extend_from_slice(&first);
    drop(first);
    loop {
        if buf.len() + piece.len() > max {
            return Err(too_long());
        }
        buf.extend_from_slice(&piece);
        match next().await? {
            Some(p) => piece = p,
            None => return Ok(buf.freeze()),
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let res = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(412) || e.code() == Some("PreconditionFailed") => {
                Err(StoreError::AlreadyExists(key.to_string()))
            }
            Err(e) => Err(StoreError::Unavailable(describe(&e).into())),
        }
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e) if status_of(&e) == Some(404) || e.code() == Some("NoSuchKey") => {
                return Err(StoreError::NotFound(key.to_string()));
            }
            Err(e) if status_of(&e) == Some(416) => {
                return Err(StoreError::InvalidRange(format!(
                    "{}..{} of {key}",
                    range.start, range.end
                )));
            }
            Err(e) => return Err(StoreError::Unavailable(describe(&e).into())),
        };
        // A store that ignored the range would hand back other bytes.
        let from = format!("bytes {}-", range.start);
        match out.content_range.as_deref() {
            Some(r) if r.starts_with(&from) => {}
            None if range.start == 0 => {}
            answered => {
                return Err(StoreError::Unavailable(
                    format!(
                        "asked {key} for bytes {}..{}, the store answered {}",
                        range.start,
                        range.end,
                        answered.unwrap_or("the whole object")
                    )
                    .into(),
                ));
            }
        }
        let want = range.end - range.start;
        let len = out
            .content_length
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(want)
            .min(want);
        read_body(out.body, len as usize, want as usize).await
    }

    async fn delete_many(&self, keys: &[String]) -> DeleteOutcome {
        let mut outcome = DeleteOutcome::default();
        // DeleteObjects takes at most 1,000 keys per call.
        for group in keys.chunks(1000) {
            let ids: Result<Vec<_>, _> = group
                .iter()
                .map(|k| ObjectIdentifier::builder().key(self.full_key(k)).build())
                .collect();
            let delete =
                ids.and_then(|ids| Delete::builder().set_objects(Some(ids)).quiet(true).build());
            let delete = match delete {
                Ok(d) => d,
                Err(e) => {
                    let err = StoreError::unavailable(e);
                    outcome
                        .failed
                        .extend(group.iter().map(|k| (k.clone(), err.clone())));
                    continue;
                }
            };
            match self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
            {
                Ok(out) => {
                    let mut failed = std::collections::HashSet::new();
                    for e in out.errors() {
                        let key = self.strip(e.key().unwrap_or_default());
                        let msg = format!(
                            "{}: {}",
                            e.code().unwrap_or("error"),
                            e.message().unwrap_or("")
                        );
                        failed.insert(key.clone());
                        outcome
                            .failed
                            .push((key, StoreError::Unavailable(msg.into())));
                    }
                    outcome
                        .deleted
                        .extend(group.iter().filter(|k| !failed.contains(*k)).cloned());
                }
                Err(e) => {
                    let err = StoreError::Unavailable(describe(&e).into());
                    outcome
                        .failed
                        .extend(group.iter().map(|k| (k.clone(), err.clone())));
                }
            }
        }
        outcome
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError> {
        let mut req = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .max_keys(1000);
        if let Some(a) = after {
            req = req.start_after(self.full_key(a));
        }
        let out = req
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e).into()))?;
        let objects: Vec<ObjectMeta> = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectMeta {
                    key: self.strip(o.key()?),
                    size: o.size().unwrap_or(0).max(0) as u64,
                })
            })
            .collect();
        let next_after = if out.is_truncated().unwrap_or(false) {
            objects.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ListPage {
            objects,
            next_after,
        })
    }
}
