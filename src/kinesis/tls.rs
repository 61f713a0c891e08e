//! TLS on the Kinesis port: the rustls server configuration (ring provider, ALPN h2 and
//! http/1.1), telling a TLS ClientHello from plain HTTP on the first byte, and the
//! development certificates `strait cert` writes.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The first byte of a TLS record carrying a handshake (the ClientHello).
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// Loads a PEM certificate chain and private key into a server configuration.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("kinesis.tls.cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("kinesis.tls.cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "kinesis.tls.cert {}: no certificate in the file",
            cert.display()
        ));
    }
    crate::observe::metrics().certificate("kinesis", &certs);
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("kinesis.tls.key {}: {e}", key.display()))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("kinesis.tls: the key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The files `strait cert` writes.
pub struct DevCertificate {
    /// The CA certificate clients trust.
    pub ca_pem: String,
    /// The server certificate followed by the CA, for `kinesis.tls.cert`.
    pub chain_pem: String,
    pub key_pem: String,
}

/// A fresh CA and a server certificate it signs, for `hosts` plus localhost and the
/// loopback addresses. A separate CA keeps strict verifiers happy (rustls-webpki refuses a
/// CA certificate as the server's own).
pub fn dev_certificate(hosts: &[String]) -> Result<DevCertificate, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let fail = |e: rcgen::Error| format!("certificate generation failed: {e}");
    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "strait development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca.self_signed(&ca_key).map_err(fail)?;

    let mut names: Vec<String> = hosts.to_vec();
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_string());
        }
    }
    let key = KeyPair::generate().map_err(fail)?;
    let mut leaf = CertificateParams::new(names.clone()).map_err(fail)?;
    leaf.distinguished_name
        .push(DnType::CommonName, names[0].clone());
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf.signed_by(&key, &ca, &ca_key).map_err(fail)?;
    Ok(DevCertificate {
        ca_pem: ca.pem(),
        chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_load() {
        let dir = tempfile::tempdir().unwrap();
        let c = dev_certificate(&["strait.test".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, &c.chain_pem).unwrap();
        std::fs::write(&key, &c.key_pem).unwrap();
        let config = server_config(&cert, &key).unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
        // A key from another pair is refused with a message naming the setting.
        let other = dev_certificate(&["x".into()]).unwrap();
        std::fs::write(&key, &other.key_pem).unwrap();
        let e = server_config(&cert, &key).unwrap_err();
        assert!(e.contains("kinesis.tls"), "{e}");
        std::fs::write(&cert, "not pem").unwrap();
        assert!(server_config(&cert, &key).is_err());
    }
}
