//! strait's own SASL login to the cluster: PLAIN, SCRAM-SHA-256/512 (RFC 5802, RFC 7677) and
//! AWS_MSK_IAM (`msk_iam`), over SaslHandshake v1 and SaslAuthenticate v2.

use hmac::{Hmac, Mac};
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::protocol::kafka::frame;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    AwsMskIam,
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(Mechanism::ScramSha512),
            "AWS_MSK_IAM" => Some(Mechanism::AwsMskIam),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::AwsMskIam => "AWS_MSK_IAM",
        }
    }
}

#[derive(Clone)]
pub struct Credentials {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
    /// AWS_MSK_IAM signs for this region (strait's `region`).
    pub region: String,
    /// AWS_MSK_IAM's credentials.
    pub aws: Option<std::sync::Arc<crate::protocol::aws::credentials::AwsProvider>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Logs in on a fresh connection; errors name the step and the broker's message. `aws`:
/// AWS_MSK_IAM's credentials, fetched by the caller.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    creds: &Credentials,
    client_id: &str,
    host: &str,
    aws: Option<&super::msk_iam::AwsCredentials>,
) -> Result<(), String> {
    let mut correlation = 0;
    let handshake: SaslHandshakeResponse = call(
        stream,
        ApiKey::SaslHandshake,
        1,
        &mut correlation,
        client_id,
        &SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(creds.mechanism.name())),
    )
    .await?;
    if handshake.error_code != 0 {
        let offered: Vec<String> = handshake.mechanisms.iter().map(|m| m.to_string()).collect();
        return Err(format!(
            "SASL {}: the broker offers {offered:?} (error {})",
            creds.mechanism.name(),
            handshake.error_code
        ));
    }
    match creds.mechanism {
        Mechanism::Plain => {
            let token = format!("\0{}\0{}", creds.username, creds.password).into_bytes();
            exchange(stream, &mut correlation, client_id, token).await?;
            Ok(())
        }
        Mechanism::ScramSha256 => scram::<Sha256>(stream, creds, &mut correlation, client_id).await,
        Mechanism::ScramSha512 => scram::<Sha512>(stream, creds, &mut correlation, client_id).await,
        Mechanism::AwsMskIam => {
            let aws = aws.ok_or("AWS_MSK_IAM without AWS credentials")?;
            let token = super::msk_iam::payload(
                host,
                &creds.region,
                aws,
                std::time::SystemTime::now(),
                concat!("strait/", env!("CARGO_PKG_VERSION")),
            );
            exchange(stream, &mut correlation, client_id, token).await?;
            Ok(())
        }
    }
}

async fn scram<D: ScramHash>(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    creds: &Credentials,
    correlation: &mut i32,
    client_id: &str,
) -> Result<(), String> {
    let mut nonce = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut nonce);
    let client = ScramClient::<D>::new(&creds.username, &creds.password, &b64(&nonce));
    let server_first =
        exchange(stream, correlation, client_id, client.first().into_bytes()).await?;
    let server_first = String::from_utf8(server_first).map_err(|_| "SCRAM: non-UTF-8 reply")?;
    let (final_message, expected) = client.finish(&server_first)?;
    let server_final = exchange(stream, correlation, client_id, final_message.into_bytes()).await?;
    if server_final != expected.as_bytes() {
        return Err("SCRAM: the broker's signature does not match (wrong server?)".into());
    }
    Ok(())
}

async fn exchange(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    correlation: &mut i32,
    client_id: &str,
    token: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let r: SaslAuthenticateResponse = call(
        stream,
        ApiKey::SaslAuthenticate,
        2,
        correlation,
        client_id,
        &SaslAuthenticateRequest::default().with_auth_bytes(token.into()),
    )
    .await?;
    if r.error_code != 0 {
        let msg = r.error_message.map(|m| m.to_string()).unwrap_or_default();
        return Err(format!(
            "SASL authentication failed: {msg} (error {})",
            r.error_code
        ));
    }
    Ok(r.auth_bytes.to_vec())
}

async fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    key: ApiKey,
    version: i16,
    correlation: &mut i32,
    client_id: &str,
    request: &Req,
) -> Result<Resp, String> {
    *correlation += 1;
    let frame = frame::encode_request(key, version, *correlation, client_id, request)?;
    let round_trip = async {
        stream.write_all(&frame).await.map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())?;
        frame::read_frame(stream, 1 << 20)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the broker closed the connection".to_string())
    };
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), round_trip)
        .await
        .map_err(|_| format!("{key:?} timed out"))??;
    let (got, mut body) = frame::response_body(key, version, response)?;
    if got != *correlation {
        return Err(format!(
            "{key:?}: correlation {got}, expected {correlation}"
        ));
    }
    Resp::decode(&mut body, version).map_err(|e| format!("bad {key:?} response: {e}"))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("SCRAM: bad base64: {e}"))
}

/// The hash a SCRAM mechanism is built on.
pub trait ScramHash {
    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8>;
    fn hash(data: &[u8]) -> Vec<u8>;
}

macro_rules! scram_hash {
    ($t:ty) => {
        impl ScramHash for $t {
            fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
                let mut m = Hmac::<$t>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            fn hash(data: &[u8]) -> Vec<u8> {
                <$t>::digest(data).to_vec()
            }
        }
    };
}
scram_hash!(Sha256);
scram_hash!(Sha512);

/// One SCRAM conversation, client side.
pub struct ScramClient<D> {
    password: String,
    nonce: String,
    first_bare: String,
    hash: std::marker::PhantomData<D>,
}

impl<D: ScramHash> ScramClient<D> {
    pub fn new(username: &str, password: &str, nonce: &str) -> Self {
        let name = username.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            password: password.to_string(),
            nonce: nonce.to_string(),
            first_bare: format!("n={name},r={nonce}"),
            hash: std::marker::PhantomData,
        }
    }

    pub fn first(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// From the server's first message: the client's final message and the server's final
    /// message to expect.
    pub fn finish(&self, server_first: &str) -> Result<(String, String), String> {
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .ok_or_else(|| format!("SCRAM: no {k}= in {server_first:?}"))
        };
        let nonce = attr("r")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("SCRAM: the server nonce does not extend ours".into());
        }
        let salt = unb64(attr("s")?)?;
        let iterations: u32 = attr("i")?
            .parse()
            .map_err(|_| "SCRAM: bad iteration count".to_string())?;
        if !(1..=1_000_000).contains(&iterations) {
            return Err(format!("SCRAM: iteration count {iterations} out of range"));
        }
        let salted = hi::<D>(self.password.as_bytes(), &salt, iterations);
        let client_key = D::hmac(&salted, b"Client Key");
        let stored_key = D::hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = D::hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = D::hmac(&salted, b"Server Key");
        let server_signature = D::hmac(&server_key, auth_message.as_bytes());
        Ok((
            format!("{without_proof},p={}", b64(&proof)),
            format!("v={}", b64(&server_signature)),
        ))
    }
}

/// PBKDF2 with one output block (the hash length), as SCRAM's Hi().
fn hi<D: ScramHash>(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut block = salt.to_vec();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = D::hmac(password, &block);
    let mut out = u.clone();
    for _ in 1..iterations {
        u = D::hmac(password, &u);
        for (o, x) in out.iter_mut().zip(&u) {
            *o ^= x;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: the SCRAM-SHA-256 example conversation.
    #[test]
    fn rfc7677_sha256_conversation() {
        let c = ScramClient::<Sha256>::new("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let (client_final, server_final) = c
            .finish("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_ours_is_refused() {
        let c = ScramClient::<Sha512>::new("u", "p", "abc");
        assert!(c.finish("r=xyz123,s=AAAA,i=4096").is_err());
        assert!(c.finish("r=abc,s=AAAA,i=4096").is_err());
        assert!(c.finish("r=abcd,s=AAAA,i=0").is_err());
        assert!(c.finish("s=AAAA,i=4096").is_err());
        assert!(c.finish("r=abcd,s=AAAA,i=4096").is_ok());
    }

    #[test]
    fn user_names_are_escaped() {
        let c = ScramClient::<Sha256>::new("a=b,c", "p", "n");
        assert_eq!(c.first(), "n,,n=a=3Db=2Cc,r=n");
    }

    #[test]
    fn credentials_do_not_print_the_password() {
        let c = Credentials {
            mechanism: Mechanism::Plain,
            username: "u".into(),
            password: "hunter2".into(),
            region: "eu-west-1".into(),
            aws: None,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
