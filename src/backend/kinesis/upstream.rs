//! strait's connection to an upstream Kinesis endpoint: pooled HTTP/1.1, or h2 where TLS
//! negotiates it, and every request signed with strait's own credentials (SigV4, service
//! `kinesis`). Bodies go as they are, JSON or CBOR, whichever the client sent; answers come
//! back unread, so event streams are relayed as they arrive.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::KinesisBackendConfig;
use crate::protocol::aws::credentials::AwsProvider;
use crate::protocol::aws::{sigv4, sts};

/// Client headers forwarded as they are. The rest (the client's signature, date and token,
/// host, framing) are strait's to set.
const FORWARDED: &[&str] = &[
    "content-type",
    "x-amz-target",
    "accept",
    "user-agent",
    "x-amz-user-agent",
];

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no AWS credentials for the Kinesis upstream: {0}")]
    Credentials(String),
    #[error("cannot sign the request for the Kinesis upstream: {0}")]
    Signing(String),
    #[error("the Kinesis upstream {endpoint} did not answer: {why}")]
    Unreachable { endpoint: String, why: String },
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct Upstream {
    uri: Uri,
    region: String,
    creds: Arc<AwsProvider>,
    client: Client<Connector, Full<Bytes>>,
}

impl Upstream {
    pub fn new(cfg: &KinesisBackendConfig) -> Result<Upstream, String> {
        let url = cfg.endpoint_url();
        let bad = |why: String| format!("backend.kinesis.endpoint {url:?}: {why}");
        let given: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
        // Kinesis takes every operation at "/".
        let uri = Uri::builder()
            .scheme(
                given
                    .scheme()
                    .cloned()
                    .ok_or_else(|| bad("no scheme".into()))?,
            )
            .authority(
                given
                    .authority()
                    .cloned()
                    .ok_or_else(|| bad("no host".into()))?,
            )
            .path_and_query("/")
            .build()
            .map_err(|e| bad(format!("{e}")))?;
        let creds = AwsProvider::from_setting(&cfg.credentials, &cfg.region)?;
        let ca = cfg
            .ca_bundle
            .as_deref()
            .unwrap_or(Path::new(sts::SYSTEM_CA_BUNDLE));
        let tls = if uri.scheme_str() == Some("https") {
            sts::client_config(ca)?
        } else {
            // Plain HTTP never uses it, and a machine without a CA bundle must still reach
            // a local emulator.
            sts::client_config(ca).unwrap_or_else(|_| empty_tls())
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(Upstream {
            uri,
            region: cfg.region.clone(),
            creds,
            client,
        })
    }

    /// At start-up: credentials that can only be found by asking (the instance profile, the
    /// last resort) must answer now.
    pub async fn credentials_ready(&self) -> Result<(), String> {
        self.creds.ready().await
    }

    pub fn endpoint(&self) -> String {
        self.uri.to_string()
    }

    /// Sends one Kinesis request with the client's content type, target and body, signed as
    /// strait; the answer's body is left for the caller to stream.
    pub async fn send(
        &self,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let creds = self
            .creds
            .current()
            .await
            .map_err(UpstreamError::Credentials)?;
        let (mut parts, ()) = Request::post(self.uri.clone())
            .body(())
            .expect("a POST to a parsed URI is a valid request")
            .into_parts();
        for name in FORWARDED {
            for value in client_headers.get_all(*name) {
                parts.headers.append(*name, value.clone());
            }
        }
        // The host signed is the URI's authority, which hyper sends as Host (or :authority).
        sigv4::sign(
            &mut parts,
            &body,
            &creds,
            &self.region,
            "kinesis",
            SystemTime::now(),
        )
        .map_err(|e| UpstreamError::Signing(format!("{e:?}")))?;
        self.client
            .request(Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| UpstreamError::Unreachable {
                endpoint: self.endpoint(),
                why: error_chain(&e),
            })
    }
}

fn empty_tls() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// hyper's client errors say little at the top ("client error (Connect)"); the cause says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
