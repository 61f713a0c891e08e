//! Who sent a request, as far as strait knows today: the access key id its SigV4
//! `Authorization` header claims (logged at debug level), not verified. Every request is
//! accepted, unsigned or signed with any key, as the emulators do, until authentication lands
//! (the security issue); `protocol::aws::sigv4`, which signs strait's own requests to Kinesis
//! and DynamoDB, is what will check clients' signatures here.

use http::HeaderMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    /// The access key id a request claims in its SigV4 `Credential=` (not yet verified).
    AccessKey(String),
}

pub fn principal(headers: &HeaderMap) -> Principal {
    let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Principal::Anonymous;
    };
    auth.split("Credential=")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .filter(|k| !k.is_empty())
        .map(|k| Principal::AccessKey(k.to_string()))
        .unwrap_or(Principal::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_claimed_access_key() {
        let mut h = HeaderMap::new();
        assert_eq!(principal(&h), Principal::Anonymous);
        h.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(principal(&h), Principal::AccessKey("AKIDEXAMPLE".into()));
    }
}
