//! strait's connection to an upstream AWS endpoint (Kinesis, or DynamoDB for KCL lease
//! tables): pooled HTTP/1.1, or h2 where TLS negotiates it, and every request signed with
//! strait's own credentials (SigV4, for the endpoint's service). Bodies go as they are, JSON
//! or CBOR, whichever the client sent; answers come back unread, so event streams are relayed
//! as they arrive.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

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
    #[error("no AWS credentials for the upstream: {0}")]
    Credentials(String),
    #[error("cannot sign the request for the upstream: {0}")]
    Signing(String),
    #[error("the upstream {endpoint} did not answer: {why}")]
    Unreachable { endpoint: String, why: String },
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than any Kinesis call takes to start answering (the SDKs' own timeouts are shorter).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Upstream {
    uri: Uri,
    region: String,
    /// The SigV4 service name: `kinesis`, `dynamodb`.
    service: &'static str,
    creds: Arc<AwsProvider>,
    ca_bundle: Option<PathBuf>,
    client: Client<Connector, Full<Bytes>>,
}

impl Upstream {
    /// The Kinesis upstream of `backend.kinesis`.
    pub fn new(cfg: &KinesisBackendConfig) -> Result<Upstream, String> {
        let creds = AwsProvider::from_setting(&cfg.credentials, &cfg.region)?;
        Upstream::open(
            "backend.kinesis.endpoint",
            &cfg.endpoint_url(),
            "kinesis",
            &cfg.region,
            creds,
            cfg.ca_bundle.clone(),
        )
    }

    /// Another AWS service in the same region, with the same credentials and CA bundle.
    pub fn sibling(
        &self,
        setting: &str,
        url: &str,
        service: &'static str,
    ) -> Result<Upstream, String> {
        Upstream::open(
            setting,
            url,
            service,
            &self.region,
            self.creds.clone(),
            self.ca_bundle.clone(),
        )
    }

    fn open(
        setting: &str,
        url: &str,
        service: &'static str,
        region: &str,
        creds: Arc<AwsProvider>,
        ca_bundle: Option<PathBuf>,
    ) -> Result<Upstream, String> {
        let bad = |why: String| format!("{setting} {url:?}: {why}");
        let given: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
        let scheme = given
            .scheme()
            .cloned()
            .ok_or_else(|| bad("no scheme".into()))?;
        let authority = given
            .authority()
            .cloned()
            .ok_or_else(|| bad("no host".into()))?;
        // The Host hyper sends leaves out the scheme's own port, and the signature must cover
        // the Host as sent.
        let default_port = if scheme.as_str() == "https" { 443 } else { 80 };
        let authority = match authority.port_u16() {
            Some(p) if p == default_port => authority.host().to_string(),
            _ => authority.as_str().to_string(),
        };
        // Kinesis and DynamoDB take every operation at "/".
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()
            .map_err(|e| bad(format!("{e}")))?;
        let ca = ca_bundle
            .as_deref()
            .unwrap_or(Path::new(sts::SYSTEM_CA_BUNDLE));
        let tls = if uri.scheme_str() == Some("https") {
            sts::client_config(ca)?
        } else {
            // Plain HTTP never uses it, and a machine without a CA bundle must still reach
            // a local emulator.
            sts::client_config(ca).unwrap_or_else(|_| empty_tls())
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        // Idle h2 connections are pinged, so a dead one is found before a request waits on it.
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_timeout(Duration::from_secs(10))
            .http2_keep_alive_while_idle(true)
            .build(https);
        Ok(Upstream {
            uri,
            region: region.to_string(),
            service,
            creds,
            ca_bundle,
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

    /// Sends one request with the client's content type, target and body, signed as strait;
    /// the answer's body is left for the caller to stream.
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
            self.service,
            SystemTime::now(),
        )
        .map_err(|e| UpstreamError::Signing(format!("{e:?}")))?;
        // The answer's head must come in time; its body (an event stream may last minutes)
        // is the caller's to read.
        let call = self
            .client
            .request(Request::from_parts(parts, Full::new(body)));
        match tokio::time::timeout(ANSWER_TIMEOUT, call).await {
            Ok(answer) => answer.map_err(|e| UpstreamError::Unreachable {
                endpoint: self.endpoint(),
                why: error_chain(&e),
            }),
            Err(_) => Err(UpstreamError::Unreachable {
                endpoint: self.endpoint(),
                why: format!("no answer in {ANSWER_TIMEOUT:?}"),
            }),
        }
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
