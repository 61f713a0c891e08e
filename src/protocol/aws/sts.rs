//! AssumeRoleWithWebIdentity at STS over one HTTP/1.1 request (the call is not signed, so no
//! SDK is needed): a form POST, an XML answer read for the four fields that matter.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::credentials::AwsCredentials;
use super::http1;
use super::sigv4::{days_from_civil, uri_encode};

const TIMEOUT: Duration = Duration::from_secs(10);
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct WebIdentity {
    token_file: PathBuf,
    role_arn: String,
    session_name: String,
    host: String,
    port: u16,
    /// `None` for a plain-HTTP endpoint (a local STS emulator).
    tls: Option<tokio_rustls::TlsConnector>,
}

impl WebIdentity {
    /// The Host header: brackets around an IPv6 address, the port unless it is the scheme's.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls.is_some() { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl WebIdentity {
    pub fn new(
        token_file: PathBuf,
        role_arn: String,
        session_name: String,
        endpoint: &str,
        ca_bundle: Option<PathBuf>,
    ) -> Result<WebIdentity, String> {
        let bad = |why: &str| format!("AWS STS endpoint {endpoint:?}: {why}");
        let (https, rest) = match endpoint.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            _ => return Err(bad("not an http:// or https:// URL")),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        // "[v6]:port", "[v6]", "host:port" or "host".
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or_else(|| bad("no ']'"))?;
                (h.to_string(), after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            },
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None if https => 443,
            None => 80,
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let tls = if https {
            let ca = ca_bundle.unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
            Some(connector(&ca)?)
        } else {
            None
        };
        Ok(WebIdentity {
            token_file,
            role_arn,
            session_name,
            host,
            port,
            tls,
        })
    }

    /// Fresh credentials and when they expire.
    pub async fn assume_role(&self) -> Result<(AwsCredentials, SystemTime), String> {
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| {
            format!(
                "AWS_WEB_IDENTITY_TOKEN_FILE {}: {e}",
                self.token_file.display()
            )
        })?;
        let body = format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
            uri_encode(&self.role_arn),
            uri_encode(&self.session_name),
            uri_encode(token.trim())
        );
        let answer = tokio::time::timeout(TIMEOUT, self.post(&body))
            .await
            .map_err(|_| format!("AWS STS {}: no answer in 10 s", self.host))??;
        parse_answer(&answer).map_err(|e| format!("AWS STS AssumeRoleWithWebIdentity: {e}"))
    }

    async fn post(&self, body: &str) -> Result<String, String> {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: {}\r\nAccept: */*\r\nConnection: close\r\nUser-Agent: strait/{}\r\n\r\n{body}",
            self.host_header(),
            body.len(),
            env!("CARGO_PKG_VERSION")
        );
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("AWS STS {}:{}: {e}", self.host, self.port))?;
        let raw = match &self.tls {
            None => http1::exchange(tcp, &request, "AWS STS").await?,
            Some(tls) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("AWS STS host {:?}: {e}", self.host))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("AWS STS {}: TLS: {e}", self.host))?;
                http1::exchange(stream, &request, "AWS STS").await?
            }
        };
        http_body(&raw)
    }
}

fn connector(ca: &std::path::Path) -> Result<tokio_rustls::TlsConnector, String> {
    Ok(tokio_rustls::TlsConnector::from(Arc::new(client_config(
        ca,
    )?)))
}

/// A TLS client trusting the certificates of a PEM bundle (ring provider), for AWS endpoints.
pub fn client_config(ca: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).map_err(|e| format!("CA bundle {}: {e}", ca.display()))?
    {
        let c = c.map_err(|e| format!("CA bundle {}: {e}", ca.display()))?;
        // A bundle may hold certificates rustls cannot use; the others still count.
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(format!("CA bundle {}: no usable certificate", ca.display()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}

/// The body of a 200 answer (plain or chunked); otherwise STS's error code and message.
fn http_body(raw: &[u8]) -> Result<String, String> {
    let (status, body) = http1::split_answer(raw, "AWS STS")?;
    if status != 200 {
        let code = xml_text(&body, "Code").unwrap_or_default();
        let message = xml_text(&body, "Message").unwrap_or_default();
        return Err(format!("AWS STS answered {status}: {code}: {message}"));
    }
    Ok(body)
}

fn parse_answer(xml: &str) -> Result<(AwsCredentials, SystemTime), String> {
    let field =
        |name: &str| xml_text(xml, name).ok_or_else(|| format!("no <{name}> in the answer"));
    let creds = AwsCredentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: Some(field("SessionToken")?),
    };
    let expiration = field("Expiration")?;
    let expires =
        parse_time(&expiration).ok_or_else(|| format!("bad <Expiration> {expiration:?}"))?;
    Ok((creds, expires))
}

/// The text of the first `<name>…</name>`, XML entities decoded.
fn xml_text(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` as a time.
pub(super) fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example answer in AWS's AssumeRoleWithWebIdentity API reference.
    const ANSWER: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>
    <Audience>client.5498841531868486423.1548@apps.example.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2014-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <SourceIdentity>SourceIdentityValue</SourceIdentity>
    <Provider>www.amazon.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn the_reference_answer_gives_credentials_and_expiry() {
        let (c, expires) = parse_answer(ANSWER).unwrap();
        assert_eq!(c.access_key_id, "ASgeIAIOSFODNN7EXAMPLE");
        assert_eq!(
            c.secret_access_key,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        assert_eq!(
            c.session_token.as_deref(),
            Some("AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE")
        );
        // date -u -d 2014-10-24T23:00:23Z +%s
        assert_eq!(expires, UNIX_EPOCH + Duration::from_secs(1_414_191_623));
    }

    #[test]
    fn errors_name_sts_s_code_and_message() {
        let raw = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/xml\r\n\r\n<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>";
        let e = http_body(raw).unwrap_err();
        assert!(
            e.contains("403") && e.contains("AccessDenied") && e.contains("Not authorized"),
            "{e}"
        );
    }

    #[test]
    fn a_cut_answer_is_refused() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n<a>short</a>";
        assert!(http_body(raw).unwrap_err().contains("Content-Length"));
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n<a/>\n";
        assert_eq!(http_body(raw).unwrap(), "<a/>\n");
    }

    #[test]
    fn chunked_answers_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<a>xy\r\n5\r\nz</a>\r\n0\r\n\r\n";
        assert_eq!(http_body(raw).unwrap(), "<a>xyz</a>");
    }

    #[test]
    fn endpoints_and_encoding() {
        let w = WebIdentity::new(
            "/t".into(),
            "r".into(),
            "s".into(),
            "http://127.0.0.1:5000",
            None,
        )
        .unwrap();
        assert_eq!(
            (w.host.as_str(), w.port, w.tls.is_none()),
            ("127.0.0.1", 5000, true)
        );
        assert!(WebIdentity::new("/t".into(), "r".into(), "s".into(), "ftp://x", None).is_err());
        assert_eq!(w.host_header(), "127.0.0.1:5000");
        let v6 =
            WebIdentity::new("/t".into(), "r".into(), "s".into(), "http://[::1]", None).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 80));
        assert_eq!(v6.host_header(), "[::1]");
        let v6 = WebIdentity::new(
            "/t".into(),
            "r".into(),
            "s".into(),
            "http://[::1]:8080/",
            None,
        )
        .unwrap();
        assert_eq!(v6.host_header(), "[::1]:8080");
        assert_eq!(
            uri_encode("arn:aws:iam::1:role/a b"),
            "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b"
        );
        assert!(parse_time("2026-13-01T00:00:00Z").is_none());
        assert_eq!(
            parse_time("1970-01-02T00:00:01.500Z"),
            Some(UNIX_EPOCH + Duration::from_secs(86_401))
        );
    }
}
