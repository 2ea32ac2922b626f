//! The S3-compatible backend (AWS S3, MinIO, R2, Ceph...): presigned URLs signed with SigV4, in
//! which the upload's content type and exact length are signed headers, so the store itself
//! refuses a body of another length or type.

use super::objects::{DownloadTarget, ObjectInfo, Result, StorageError, UploadRequest};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use bichito_core::attachment::ImageType;
use chrono::{DateTime, Utc};
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub force_path_style: bool,
    /// Static credentials; `None` takes them from the environment the AWS way
    /// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, web identity, instance profile...).
    pub credentials: Option<(String, String)>,
}

pub struct S3Storage {
    client: Client,
    bucket: String,
    /// Where its download URLs point, when that is a custom endpoint (for the inbox's
    /// Content-Security-Policy; AWS's own are `https:`).
    download_origin: Option<String>,
}

impl S3Storage {
    pub async fn connect(settings: &S3Settings) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()));
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some((id, secret)) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "bichito-settings",
            ));
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.force_path_style)
            .build();
        Self {
            client: Client::from_conf(config),
            bucket: settings.bucket.clone(),
            download_origin: download_origin(settings),
        }
    }

    pub fn download_origin(&self) -> Option<&str> {
        self.download_origin.as_deref()
    }

    pub async fn upload_request(
        &self,
        object: &str,
        content_type: ImageType,
        content_length: i64,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<UploadRequest> {
        let presigned = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(object)
            .content_type(content_type.mime())
            .content_length(content_length)
            .presigned(presigning(now, expires_at)?)
            .await
            .map_err(backend)?;
        Ok(UploadRequest {
            url: presigned.uri().to_owned(),
            headers: presigned
                .headers()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
                .collect(),
        })
    }

    pub async fn download_url(
        &self,
        target: DownloadTarget<'_>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<String> {
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(target.object)
            .response_content_type(target.content_type.mime())
            .response_content_disposition(super::content_disposition(target.filename))
            .presigned(presigning(now, expires_at)?)
            .await
            .map_err(backend)?;
        Ok(presigned.uri().to_owned())
    }

    pub async fn copy(&self, from: &str, to: &str) -> Result<bool> {
        // Object names are `<folder>/<key>` of URL-safe characters: no encoding is needed.
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(format!("{}/{from}", self.bucket))
            .send()
            .await;
        match copied {
            Ok(_) => Ok(true),
            Err(err) if is_missing(&err) => Ok(false),
            Err(err) => Err(backend(err)),
        }
    }

    pub async fn head(&self, object: &str) -> Result<Option<ObjectInfo>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(object)
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectInfo {
                size: head.content_length().unwrap_or(0),
                content_type: head.content_type().map(str::to_owned),
            })),
            Err(err) if is_missing(&err) => Ok(None),
            Err(err) => Err(backend(err)),
        }
    }

    pub async fn read_prefix(&self, object: &str, len: usize) -> Result<Vec<u8>> {
        let last = len.saturating_sub(1);
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(object)
            .range(format!("bytes=0-{last}"))
            .send()
            .await
        {
            Ok(object) => object,
            Err(err) if is_missing(&err) => return Ok(Vec::new()),
            Err(err) => return Err(backend(err)),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|err| StorageError::Backend(err.to_string()))?
            .into_bytes();
        // A store that ignores `Range` sends everything: keep only what was asked for.
        Ok(bytes[..bytes.len().min(len)].to_vec())
    }

    /// Writes `bytes` as `object` (for uploads that arrive through the server itself).
    pub async fn put(&self, object: &str, bytes: &[u8], content_type: &str) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(object)
            .content_type(content_type)
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(backend)
    }

    pub async fn delete(&self, object: &str) -> Result<()> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(object)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_missing(&err) => Ok(()),
            Err(err) => Err(backend(err)),
        }
    }
}

fn presigning(now: DateTime<Utc>, expires_at: DateTime<Utc>) -> Result<PresigningConfig> {
    let expires_in = (expires_at - now)
        .to_std()
        .map_err(|err| StorageError::Signing(err.to_string()))?;
    PresigningConfig::builder()
        .start_time(SystemTime::from(now))
        .expires_in(expires_in)
        .build()
        .map_err(|err| StorageError::Signing(err.to_string()))
}

fn is_missing<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    let by_code = err
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| matches!(code, "NoSuchKey" | "NotFound"));
    let by_status = err
        .raw_response()
        .is_some_and(|response| response.status().as_u16() == 404);
    by_code || by_status
}

fn backend<E: std::error::Error + Send + Sync + 'static>(err: E) -> StorageError {
    // The SDK's Display is terse ("service error"); the source chain says what happened.
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    StorageError::Backend(message)
}

/// The origin (`scheme://host[:port]`) of the presigned URLs of a custom endpoint: the
/// endpoint's own with path-style addressing, the bucket's subdomain of it otherwise.
fn download_origin(settings: &S3Settings) -> Option<String> {
    let mut endpoint = reqwest::Url::parse(settings.endpoint.as_deref()?).ok()?;
    if !settings.force_path_style {
        let bucket_host = format!("{}.{}", settings.bucket, endpoint.host_str()?);
        endpoint.set_host(Some(&bucket_host)).ok()?;
    }
    Some(endpoint.origin().ascii_serialization()).filter(|origin| origin != "null")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str, force_path_style: bool) -> S3Settings {
        S3Settings {
            endpoint: Some(endpoint.into()),
            region: "us-east-1".into(),
            bucket: "shots".into(),
            force_path_style,
            credentials: None,
        }
    }

    #[test]
    fn download_urls_come_from_the_endpoint_or_the_bucket_subdomain() {
        assert_eq!(
            download_origin(&settings("http://127.0.0.1:9000/", true)).as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            download_origin(&settings("https://minio.internal", false)).as_deref(),
            Some("https://shots.minio.internal")
        );
        let aws = S3Settings {
            endpoint: None,
            ..settings("", true)
        };
        assert_eq!(download_origin(&aws), None);
    }
}
