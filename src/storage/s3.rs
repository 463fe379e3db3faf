//! Amazon S3 (or an S3-compatible server) as an `ObjectStore`, through aws-sdk-s3.
//!
//! Credentials and region come from the standard AWS chain (environment, profile files,
//! web identity, ECS and instance metadata). `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` point
//! it at another server, which then gets path-style addressing. Transfers stream: downloads go
//! to a partial file and are checked (size, and the MD5 when the ETag is one) before they are
//! renamed into place; uploads above `MULTIPART_THRESHOLD` go in parts read from the file, and
//! an unfinished multipart upload is aborted, so no object appears half-written.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use super::object::{ObjectInfo, ObjectStore, StoreError};

/// Files above this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 << 20;
/// Part size: S3 allows at most 10,000 parts, so parts grow for very large files.
const PART_SIZE: u64 = 8 << 20;
const MAX_PARTS: u64 = 10_000;

pub struct S3Store {
    client: Client,
    runtime: tokio::runtime::Runtime,
    endpoint: String,
}

impl S3Store {
    /// A client configured from the environment, as the AWS CLI would be.
    pub fn from_env() -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StoreError::io("starting the S3 client runtime", Path::new("-"), e))?;
        let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok()
            .filter(|e| !e.is_empty());
        let path_style = endpoint.is_some()
            || std::env::var("AWS_S3_FORCE_PATH_STYLE").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let client = runtime.block_on(async {
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https();
            let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(http)
                .retry_config(
                    RetryConfig::standard().with_max_attempts(4).with_initial_backoff(Duration::from_millis(200)),
                )
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .read_timeout(Duration::from_secs(60))
                        .build(),
                )
                .load()
                .await;
            let mut config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(path_style);
            if shared.region().is_none() {
                // S3 needs a region to sign; us-east-1 is what the CLI assumes for S3.
                config = config.region(aws_sdk_s3::config::Region::new("us-east-1"));
            }
            Client::from_conf(config.build())
        });
        Ok(Self { client, runtime, endpoint: endpoint.unwrap_or_else(|| "AWS".to_string()) })
    }
}

/// Name the bucket and key, and say what kind of failure it was.
fn classify<E>(bucket: &str, key: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (bucket, key) = (bucket.to_string(), key.to_string());
    let code = err.code().map(str::to_string);
    let status = match &err {
        SdkError::ServiceError(service) => Some(service.raw().status().as_u16() == 404),
        _ => None,
    };
    let detail = match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message} (HTTP {status})"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                _ => format!("HTTP {status}"),
            }
        }
        other => {
            let mut text = format!("{}", DisplayErrorContext(other));
            // The context repeats itself in Debug form after the first line of sense.
            if let Some(at) = text.find(" (DispatchFailure(").or_else(|| text.find(" (TimeoutError(")) {
                text.truncate(at);
            }
            text
        }
    };
    match code.as_deref() {
        Some("NoSuchKey" | "NotFound") => StoreError::NoSuchKey { bucket, key },
        Some("NoSuchBucket") => StoreError::NoSuchBucket { bucket },
        Some("AccessDenied" | "AllAccessDisabled" | "AccountProblem") => {
            StoreError::AccessDenied { bucket, key, detail }
        }
        Some(
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired"
            | "NotSignedUp",
        ) => StoreError::Credentials { bucket, key, detail },
        _ => match &err {
            // No credentials anywhere in the chain surfaces as a failed dispatch.
            _ if detail.contains("loading credentials") || detail.contains("no credentials") => {
                StoreError::Credentials { bucket, key, detail }
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
                StoreError::Network { bucket, key, detail }
            }
            // HEAD responses carry no error body: a 404 is all there is.
            _ if status == Some(true) => StoreError::NoSuchKey { bucket, key },
            _ => StoreError::Other { bucket, key, detail },
        },
    }
}

fn etag_of(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_string()
}

impl S3Store {
    async fn download_async(&self, bucket: &str, key: &str, dest: &Path) -> Result<ObjectInfo, StoreError> {
        let response = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| classify(bucket, key, e))?;
        let expected = response.content_length().map(|n| n as u64);
        let etag = etag_of(response.e_tag());
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| StoreError::io("creating", dir, e))?;
        }
        let partial = super::unique_partial_path(dest);
        let result = async {
            let mut file =
                tokio::fs::File::create(&partial).await.map_err(|e| StoreError::io("creating", &partial, e))?;
            let mut body = response.body;
            let mut md5 = Md5::new();
            let mut size = 0u64;
            while let Some(chunk) = body.try_next().await.map_err(|e| StoreError::Network {
                bucket: bucket.into(),
                key: key.into(),
                detail: format!("the download broke off: {}", DisplayErrorContext(&e)),
            })? {
                md5.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(|e| StoreError::io("writing", &partial, e))?;
            }
            file.sync_all().await.map_err(|e| StoreError::io("writing", &partial, e))?;
            let corrupt = |detail: String| StoreError::Corrupt { bucket: bucket.into(), key: key.into(), detail };
            if let Some(expected) = expected.filter(|e| *e != size) {
                return Err(corrupt(format!("received {size} bytes, expected {expected}")));
            }
            // A single-part upload's ETag is the MD5 of the content; a multipart one is not.
            let plain_md5 = etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit());
            let got = crate::data::files::hex(&md5.finalize());
            if plain_md5 && !etag.eq_ignore_ascii_case(&got) {
                return Err(corrupt(format!("MD5 {got} does not match the ETag {etag}")));
            }
            tokio::fs::rename(&partial, dest).await.map_err(|e| StoreError::io("renaming", dest, e))?;
            Ok(ObjectInfo { key: key.to_string(), size, etag: etag.clone() })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    async fn upload_async(&self, src: &Path, bucket: &str, key: &str) -> Result<ObjectInfo, StoreError> {
        let size = tokio::fs::metadata(src).await.map_err(|e| StoreError::io("reading", src, e))?.len();
        if size <= MULTIPART_THRESHOLD {
            let body = ByteStream::from_path(src).await.map_err(|e| StoreError::Other {
                bucket: bucket.into(),
                key: key.into(),
                detail: format!("reading {}: {e}", src.display()),
            })?;
            let response = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body)
                .send()
                .await
                .map_err(|e| classify(bucket, key, e))?;
            return Ok(ObjectInfo { key: key.to_string(), size, etag: etag_of(response.e_tag()) });
        }
        tracing::info!(
            bucket,
            key,
            bytes = size,
            parts = size.div_ceil(PART_SIZE.max(size.div_ceil(MAX_PARTS))),
            "multipart upload"
        );
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(bucket, key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let result = self.upload_parts(src, bucket, key, &upload_id, size).await;
        if result.is_err() {
            // Parts of an unfinished upload are invisible but billed: remove them.
            let _ = self.client.abort_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id).send().await;
        }
        result
    }

    async fn upload_parts(
        &self,
        src: &Path,
        bucket: &str,
        key: &str,
        upload_id: &str,
        size: u64,
    ) -> Result<ObjectInfo, StoreError> {
        let part_size = PART_SIZE.max(size.div_ceil(MAX_PARTS));
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < size {
            let length = part_size.min(size - offset);
            // Each part streams from its slice of the file: memory stays bounded by the buffer.
            let body =
                ByteStream::read_from().path(src).offset(offset).length(Length::Exact(length)).build().await.map_err(
                    |e| StoreError::Other {
                        bucket: bucket.into(),
                        key: key.into(),
                        detail: format!("reading {}: {e}", src.display()),
                    },
                )?;
            let part = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(length as i64)
                .body(body)
                .send()
                .await
                .map_err(|e| classify(bucket, key, e))?;
            parts
                .push(CompletedPart::builder().part_number(number).set_e_tag(part.e_tag().map(str::to_string)).build());
            offset += length;
            number += 1;
        }
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| classify(bucket, key, e))?;
        // The server's view must match the file before the upload counts.
        let head =
            self.client.head_object().bucket(bucket).key(key).send().await.map_err(|e| classify(bucket, key, e))?;
        if head.content_length().map(|n| n as u64) != Some(size) {
            return Err(StoreError::Corrupt {
                bucket: bucket.into(),
                key: key.into(),
                detail: format!("stored {:?} bytes of {size}", head.content_length()),
            });
        }
        Ok(ObjectInfo { key: key.to_string(), size, etag: etag_of(completed.e_tag()) })
    }

    /// PutObject of `bytes`, with SSE-KMS under `kms_key_id` when one is given.
    fn put_bytes(&self, bucket: &str, key: &str, bytes: &[u8], kms_key_id: Option<&str>) -> Result<(), StoreError> {
        let encryption = kms_key_id.map(|_| aws_sdk_s3::types::ServerSideEncryption::AwsKms);
        self.runtime.block_on(async {
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .set_server_side_encryption(encryption)
                .set_ssekms_key_id(kms_key_id.map(str::to_string))
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
                .map_err(|e| classify(bucket, key, e))?;
            Ok(())
        })
    }
}

impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        format!("S3 ({})", self.endpoint)
    }

    fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.runtime.block_on(async {
            let mut objects = Vec::new();
            let mut pages = self.client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| classify(bucket, prefix, e))?;
                for object in page.contents() {
                    let Some(key) = object.key() else { continue };
                    if key.ends_with('/') {
                        continue; // a "folder" marker, not data
                    }
                    objects.push(ObjectInfo {
                        key: key.to_string(),
                        size: object.size().unwrap_or_default() as u64,
                        etag: etag_of(object.e_tag()),
                    });
                }
            }
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(objects)
        })
    }

    fn download(&self, bucket: &str, key: &str, dest: &Path) -> Result<ObjectInfo, StoreError> {
        self.runtime.block_on(self.download_async(bucket, key, dest))
    }

    fn upload(&self, src: &Path, bucket: &str, key: &str) -> Result<ObjectInfo, StoreError> {
        self.runtime.block_on(self.upload_async(src, bucket, key))
    }

    fn read(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        self.runtime.block_on(async {
            let response =
                self.client.get_object().bucket(bucket).key(key).send().await.map_err(|e| classify(bucket, key, e))?;
            let bytes = response.body.collect().await.map_err(|e| StoreError::Network {
                bucket: bucket.into(),
                key: key.into(),
                detail: format!("the download broke off: {}", DisplayErrorContext(&e)),
            })?;
            Ok(bytes.into_bytes().to_vec())
        })
    }

    fn write(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_bytes(bucket, key, bytes, None)
    }

    fn write_encrypted(&self, bucket: &str, key: &str, bytes: &[u8], kms_key_id: &str) -> Result<(), StoreError> {
        self.put_bytes(bucket, key, bytes, Some(kms_key_id))
    }

    fn create_new(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        self.runtime.block_on(async {
            // Conditional write: S3 refuses it with 412 if the key exists. Servers that ignore
            // the condition are caught by the check before it (not race-free there).
            match self.client.head_object().bucket(bucket).key(key).send().await {
                Ok(_) => return Ok(false),
                Err(e) => match classify(bucket, key, e) {
                    StoreError::NoSuchKey { .. } => {}
                    other => return Err(other),
                },
            }
            let put = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .if_none_match("*")
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await;
            match put {
                Ok(_) => Ok(true),
                Err(e) if matches!(e.code(), Some("PreconditionFailed" | "ConditionalRequestConflict")) => Ok(false),
                Err(e) => Err(classify(bucket, key, e)),
            }
        })
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.runtime.block_on(async {
            self.client.delete_object().bucket(bucket).key(key).send().await.map_err(|e| classify(bucket, key, e))?;
            Ok(())
        })
    }
}
