//! AWS Signature Version 4 for both ends of a connection (reference §1.1): a server that
//! verifies a request as it arrived, over HTTP/1.1 or HTTP/2, and a client that signs one
//! (`sign`). Both build the same canonical request here because HTTP/2 has no `Host` header:
//! its `:authority` pseudo-header stands in for `host`, and the JS SDK v3 even lists
//! `:authority` among the signed headers, which aws-sigv4's request signer cannot
//! represent. The signing key and the final HMAC come from aws-sigv4.
//!
//! Verification against stored secrets is not switched on yet: `kinesis/auth.rs` only reads
//! the claimed identity. This module is what that step will call; that step also owes a
//! clock-skew check on X-Amz-Date against the credential scope, URI-encoding of paths and
//! queries other than `POST /`, and a constant-time comparison of signatures.

use std::time::{Duration, SystemTime};

use http::request::Parts;
use sha2::{Digest, Sha256};

use super::credentials::AwsCredentials;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    /// `YYYYMMDD` from the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// No Authorization header (MissingAuthenticationTokenException).
    Missing,
    /// A malformed Authorization header or missing signed header (IncompleteSignatureException).
    Incomplete(String),
}

pub fn parse_authorization(value: &str) -> Result<Authorization, SigError> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or_else(|| SigError::Incomplete("Unsupported signature algorithm".into()))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let missing = |what: &str| {
        SigError::Incomplete(format!("Authorization header requires '{what}' parameter."))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" || scope[1].len() != 8 {
        return Err(SigError::Incomplete(format!(
            "Credential should be scoped to a valid region, not '{credential}'."
        )));
    }
    Ok(Authorization {
        access_key: scope[0].to_string(),
        date: scope[1].to_string(),
        region: scope[2].to_string(),
        service: scope[3].to_string(),
        signed_headers: signed.split(';').map(str::to_string).collect(),
        signature: signature.to_string(),
    })
}

/// The value a signed header had on the wire. `host` falls back to the request's authority
/// (HTTP/2), and `:authority` is the authority itself.
fn header_value(parts: &Parts, name: &str) -> Option<String> {
    let authority = || parts.uri.authority().map(|a| a.as_str().to_string());
    match name {
        ":authority" => authority(),
        "host" => parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(authority),
        _ => {
            let values: Vec<String> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| collapse(&String::from_utf8_lossy(v.as_bytes())))
                .collect();
            (!values.is_empty()).then(|| values.join(","))
        }
    }
}

/// Trims and folds runs of spaces, as the canonical form requires.
fn collapse(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request for `parts` and a body whose SHA-256 is `payload_sha256` (hex).
pub fn canonical_request(
    parts: &Parts,
    signed_headers: &[String],
    payload_sha256: &str,
) -> Result<String, SigError> {
    let path = parts.uri.path();
    let path = if path.is_empty() { "/" } else { path };
    let mut query: Vec<(String, String)> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect();
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut out = format!("{}\n{path}\n{}\n", parts.method, query.join("&"));
    for name in signed_headers {
        let value = header_value(parts, name).ok_or_else(|| {
            SigError::Incomplete(format!("Signed header '{name}' is not in the request."))
        })?;
        out.push_str(&format!("{name}:{value}\n"));
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_sha256);
    Ok(out)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The signature a request should carry, given the secret of `auth.access_key`.
pub fn expected_signature(
    parts: &Parts,
    body: &[u8],
    auth: &Authorization,
    secret: &str,
) -> Result<String, SigError> {
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| SigError::Incomplete("Missing X-Amz-Date header.".into()))?;
    // A claimed payload hash must be the body's (or the explicit UNSIGNED-PAYLOAD);
    // otherwise a signed header would let the body be swapped.
    let actual = sha256_hex(body);
    let payload = match parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
    {
        Some("UNSIGNED-PAYLOAD") => "UNSIGNED-PAYLOAD".to_string(),
        Some(claimed) if claimed != actual => {
            return Err(SigError::Incomplete(
                "The provided x-amz-content-sha256 header does not match what was computed.".into(),
            ))
        }
        _ => actual,
    };
    let canonical = canonical_request(parts, &auth.signed_headers, &payload)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let day = scope_day(&auth.date)
        .ok_or_else(|| SigError::Incomplete(format!("Bad credential date {}.", auth.date)))?;
    let key = aws_sigv4::sign::v4::generate_signing_key(secret, day, &auth.region, &auth.service);
    Ok(aws_sigv4::sign::v4::calculate_signature(
        key,
        string_to_sign.as_bytes(),
    ))
}

/// Noon UTC of a `YYYYMMDD` day: aws-sigv4 derives the key from a time, and only the day counts.
fn scope_day(date: &str) -> Option<SystemTime> {
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (
        date[..4].parse().ok()?,
        date[4..6].parse().ok()?,
        date[6..].parse().ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let secs = u64::try_from(days_from_civil(y, m, d) * 86_400 + 43_200).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Signs a request as a client: sets `x-amz-date`, `x-amz-content-sha256`, the session token
/// when there is one, and `authorization` over `host` (or the URI's authority), every
/// `x-amz-*` header and `content-type`.
pub fn sign(
    parts: &mut Parts,
    body: &[u8],
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<(), SigError> {
    let amz_date = amz_date(now);
    let header = |v: &str| {
        http::HeaderValue::from_str(v)
            .map_err(|_| SigError::Incomplete(format!("{v:?} is no header value")))
    };
    parts.headers.insert("x-amz-date", header(&amz_date)?);
    let payload = sha256_hex(body);
    parts
        .headers
        .insert("x-amz-content-sha256", header(&payload)?);
    if let Some(token) = &creds.session_token {
        parts.headers.insert("x-amz-security-token", header(token)?);
    }
    let mut signed: Vec<String> = parts
        .headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k == "host" || k == "content-type" || k.starts_with("x-amz-"))
        .collect();
    if !signed.iter().any(|k| k == "host") {
        signed.push("host".into());
    }
    signed.sort();
    signed.dedup();
    let canonical = canonical_request(parts, &signed, &payload)?;
    let scope = format!("{}/{region}/{service}/aws4_request", &amz_date[..8]);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let key =
        aws_sigv4::sign::v4::generate_signing_key(&creds.secret_access_key, now, region, service);
    let signature = aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes());
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        creds.access_key_id,
        signed.join(";")
    );
    parts
        .headers
        .insert("authorization", header(&authorization)?);
    Ok(())
}

/// `YYYYMMDDTHHMMSSZ` for a time, as `X-Amz-Date` carries it.
pub fn amz_date(now: SystemTime) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let tod = secs % 86_400;
    format!(
        "{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// SigV4's UriEncode: everything but unreserved characters, as %XX (also what a form body
/// needs).
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Days since 1970-01-01 of a date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a count of days since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::Request<()>) -> Parts {
        req.into_parts().0
    }

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// `get-vanilla` from the AWS SigV4 test suite.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let p = parts(
            http::Request::get("/")
                .header("host", "example.amazonaws.com")
                .header("x-amz-date", "20150830T123600Z")
                .body(())
                .unwrap(),
        );
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        )
        .unwrap();
        assert_eq!(auth.access_key, "AKIDEXAMPLE");
        let sig = expected_signature(&p, b"", &auth, SECRET).unwrap();
        assert_eq!(sig, auth.signature);
    }

    /// An HTTP/2 request has no Host header; `host` and `:authority` both read the authority,
    /// so a JS SDK v3 style signature over `:authority` verifies like an HTTP/1.1 one.
    #[test]
    fn http2_authority_stands_in_for_host() {
        let h2 = parts(
            http::Request::post("http://localhost:4567/")
                .version(http::Version::HTTP_2)
                .header("x-amz-date", "20150830T123600Z")
                .header("content-type", "application/x-amz-json-1.1")
                .body(())
                .unwrap(),
        );
        let h1 = parts(
            http::Request::post("/")
                .header("host", "localhost:4567")
                .header("x-amz-date", "20150830T123600Z")
                .header("content-type", "application/x-amz-json-1.1")
                .body(())
                .unwrap(),
        );
        let signed = |names: &str| names.split(';').map(str::to_string).collect::<Vec<_>>();
        let a = canonical_request(&h2, &signed("content-type;host;x-amz-date"), "x").unwrap();
        let b = canonical_request(&h1, &signed("content-type;host;x-amz-date"), "x").unwrap();
        assert_eq!(a, b);
        let c = canonical_request(&h2, &signed(":authority;content-type;x-amz-date"), "x").unwrap();
        assert!(c.contains("\n:authority:localhost:4567\n"), "{c}");
        assert!(matches!(
            canonical_request(&h1, &signed("x-amz-target"), "x"),
            Err(SigError::Incomplete(_))
        ));
    }

    /// Cross-check with aws-sigv4's own request signer on a Kinesis-shaped request.
    #[test]
    fn agrees_with_the_aws_sigv4_signer() {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let body = br#"{"StreamName":"s"}"#;
        let identity =
            aws_credential_types::Credentials::new("AKID", SECRET, None, None, "test").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("kinesis")
            .time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_700_000))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("host", "localhost:4567"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Kinesis_20131202.DescribeStreamSummary"),
        ];
        let signable = SignableRequest::new(
            "POST",
            "http://localhost:4567/",
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut req = http::Request::post("/");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let p = parts(req.body(()).unwrap());
        let auth = parse_authorization(p.headers["authorization"].to_str().unwrap()).unwrap();
        assert_eq!(auth.service, "kinesis");
        assert_eq!(
            expected_signature(&p, body, &auth, SECRET).unwrap(),
            auth.signature
        );
        assert_ne!(
            expected_signature(&p, b"{}", &auth, SECRET).unwrap(),
            auth.signature
        );
    }

    #[test]
    fn malformed_headers_are_incomplete() {
        assert!(matches!(
            parse_authorization("AWS4-HMAC-SHA256 Credential=A/2015/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=x"),
            Err(SigError::Incomplete(_))
        ));
        assert!(matches!(
            parse_authorization("Basic abc"),
            Err(SigError::Incomplete(_))
        ));
        assert!(scope_day("20150830").is_some());
        assert!(scope_day("2015083x").is_none());
    }

    /// What `sign` writes verifies on the server side, and agrees with aws-sigv4's signer.
    #[test]
    fn client_signature_verifies() {
        let creds = AwsCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: SECRET.into(),
            session_token: Some("token".into()),
        };
        let body = br#"{"StreamName":"s"}"#;
        let mut p = parts(
            http::Request::post("http://localhost:4567/")
                .header("host", "localhost:4567")
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amz-target", "Kinesis_20131202.ListShards")
                .body(())
                .unwrap(),
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_700_000);
        sign(&mut p, body, &creds, "us-east-1", "kinesis", now).unwrap();
        assert_eq!(p.headers["x-amz-date"], "20261126T133320Z");
        let auth = parse_authorization(p.headers["authorization"].to_str().unwrap()).unwrap();
        assert_eq!(
            auth.signed_headers,
            [
                "content-type",
                "host",
                "x-amz-content-sha256",
                "x-amz-date",
                "x-amz-security-token",
                "x-amz-target"
            ]
        );
        assert_eq!(
            expected_signature(&p, body, &auth, SECRET).unwrap(),
            auth.signature
        );
        // The signed payload hash pins the body.
        assert!(expected_signature(&p, b"{}", &auth, SECRET).is_err());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for days in [-1, 0, 11_016, 20_784] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m as i64, d as i64), days);
        }
    }

    #[test]
    fn uri_encoding_keeps_only_unreserved() {
        assert_eq!(uri_encode("a/b+c=d~e_f.g-h"), "a%2Fb%2Bc%3Dd~e_f.g-h");
        assert_eq!(
            uri_encode("kafka-cluster:Connect"),
            "kafka-cluster%3AConnect"
        );
    }
}
