//! Connections from strait to the cluster's brokers: TCP, then TLS (rustls, ring) when
//! `backend.kafka.tls.enabled`, then strait's own SASL login (`sasl`) when `backend.kafka.sasl`
//! is set. Every connection strait opens, its own and those paired with clients', goes through
//! here, so a client that speaks plaintext without SASL to strait reaches a TLS + SASL cluster.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::sasl::{self, Credentials, Mechanism};
use crate::config::KafkaBackendConfig;

/// How long connecting, the TLS handshake and the SASL login may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub trait BrokerIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> BrokerIo for T {}

/// A ready connection to one broker.
pub type BrokerStream = Box<dyn BrokerIo>;

pub struct Connector {
    client_id: String,
    tls: Option<tokio_rustls::TlsConnector>,
    sasl: Option<Credentials>,
}

impl Connector {
    pub fn plain(client_id: &str) -> Connector {
        Connector {
            client_id: client_id.to_string(),
            tls: None,
            sasl: None,
        }
    }

    /// From validated configuration; file errors name the key.
    pub fn from_config(k: &KafkaBackendConfig, region: &str) -> Result<Connector, String> {
        let tls = if k.tls.enabled {
            let ca = k
                .tls
                .ca
                .as_deref()
                .ok_or("backend.kafka.tls.ca: required when TLS is enabled")?;
            Some(tokio_rustls::TlsConnector::from(client_config(
                ca,
                k.tls.cert.as_deref(),
                k.tls.key.as_deref(),
            )?))
        } else {
            None
        };
        let sasl = match &k.sasl.mechanism {
            None => None,
            Some(m) => Some(Credentials {
                mechanism: Mechanism::parse(m)
                    .ok_or_else(|| format!("backend.kafka.sasl.mechanism: {m:?} is not built"))?,
                username: k.sasl.username.clone().unwrap_or_default(),
                password: k.sasl.password.clone().unwrap_or_default(),
                region: region.to_string(),
                // A missing source fails at start-up, not at the first connection.
                aws: if Mechanism::parse(m) == Some(Mechanism::AwsMskIam) {
                    Some(crate::protocol::aws::credentials::AwsProvider::from_env(
                        region,
                    )?)
                } else {
                    None
                },
            }),
        };
        Ok(Connector {
            client_id: k.client_id.clone(),
            tls,
            sasl,
        })
    }

    /// At start-up: AWS_MSK_IAM credentials that can only be found by asking (the instance
    /// profile, the last resort) must answer now.
    pub async fn credentials_ready(&self) -> Result<(), String> {
        match self.sasl.as_ref().and_then(|c| c.aws.as_ref()) {
            Some(provider) => provider.ready().await,
            None => Ok(()),
        }
    }

    /// Whether strait logs in itself (then clients' own SASL requests are not forwarded).
    pub fn logs_in(&self) -> bool {
        self.sasl.is_some()
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub async fn connect(&self, addr: &str) -> Result<BrokerStream, String> {
        // AWS credentials may need a trip to STS first, on its own clock (`protocol::aws::credentials`):
        // connections waiting for one exchange must not spend their broker timeout on it.
        let aws = match self.sasl.as_ref().and_then(|c| c.aws.as_ref()) {
            Some(provider) => Some(
                provider
                    .current()
                    .await
                    .map_err(|e| format!("{addr}: {e}"))?,
            ),
            None => None,
        };
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_inner(addr, aws.as_ref()))
            .await
            .map_err(|_| format!("{addr}: connect, TLS and login took over 10 s"))?
            .map_err(|e| format!("{addr}: {e}"))
    }

    async fn connect_inner(
        &self,
        addr: &str,
        aws: Option<&super::msk_iam::AwsCredentials>,
    ) -> Result<BrokerStream, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_matches(|c| c == '[' || c == ']');
        let mut stream: BrokerStream = match &self.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| format!("TLS server name {host:?}: {e}"))?;
                Box::new(
                    tls.connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS: {e}"))?,
                )
            }
        };
        if let Some(creds) = &self.sasl {
            sasl::authenticate(&mut stream, creds, &self.client_id, host, aws).await?;
        }
        Ok(stream)
    }
}

fn client_config(
    ca: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("backend.kafka.tls.ca {}: {e}", ca.display()))?;
    for c in cas {
        let c = c.map_err(|e| format!("backend.kafka.tls.ca {}: {e}", ca.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("backend.kafka.tls.ca {}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "backend.kafka.tls.ca {}: no certificate in the file",
            ca.display()
        ));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots);
    let config = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("backend.kafka.tls.cert {}: {e}", cert.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("backend.kafka.tls.cert {}: {e}", cert.display()))?;
            crate::observe::metrics().certificate("kafka_backend_client", &chain);
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("backend.kafka.tls.key {}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!("backend.kafka.tls: the key does not fit the certificate: {e}")
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
