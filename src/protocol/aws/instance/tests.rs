//! The container agent and IMDSv2 against stand-ins on loopback that answer as the AWS
//! documentation shows (no metadata service can run here): what is asked, in what order, with
//! which headers, and what a refusal looks like.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

type Seen = Arc<Mutex<Vec<String>>>;

/// Serves each request with `answer(request head)`: (status, body). Returns its port and
/// the request heads seen.
async fn stand_in(answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let (answer, log) = (Arc::new(answer), seen.clone());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf).to_string();
            log.lock().unwrap().push(head.clone());
            let (status, body) = answer(&head);
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    (port, seen)
}

const CREDS: &str = r#"{"Code":"Success","LastUpdated":"2026-12-06T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"secret","Token":"session","Expiration":"2036-12-06T06:00:00Z"}"#;

fn vars(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
}

#[tokio::test]
async fn imdsv2_asks_a_session_token_then_the_role_then_its_credentials() {
    let (port, seen) = stand_in(|head| {
        let line = head.lines().next().unwrap_or("");
        let token_ok = head.contains("X-aws-ec2-metadata-token: tok-1");
        match line {
            l if l.starts_with("PUT /latest/api/token")
                && head.contains("X-aws-ec2-metadata-token-ttl-seconds: 21600") =>
            {
                (200, "tok-1".into())
            }
            l if l.starts_with("GET /latest/meta-data/iam/security-credentials/ ") && token_ok => {
                (200, "app-role\n".into())
            }
            l if l.starts_with("GET /latest/meta-data/iam/security-credentials/app-role ")
                && token_ok =>
            {
                (200, CREDS.into())
            }
            _ => (401, String::new()),
        }
    })
    .await;
    let imds = InstanceMetadata::from_vars(&vars(vec![(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    )]))
    .unwrap()
    .unwrap();
    let (c, expires) = imds.fetch().await.unwrap();
    assert_eq!(c.access_key_id, "ASIAEXAMPLE");
    assert_eq!(c.session_token.as_deref(), Some("session"));
    assert!(expires > SystemTime::now());
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn imds_refusals_and_disabling() {
    let (port, _) = stand_in(|_| (403, "resolve_deny: denied destination".into())).await;
    let imds = InstanceMetadata::from_vars(&vars(vec![(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    )]))
    .unwrap()
    .unwrap();
    let e = imds.fetch().await.err().unwrap();
    assert!(e.contains("403") && e.contains("/latest/api/token"), "{e}");
    let none =
        InstanceMetadata::from_vars(&vars(vec![("AWS_EC2_METADATA_DISABLED", "true".into())]));
    assert!(none.unwrap().is_none());
}

#[tokio::test]
async fn the_container_agent_gets_the_token_from_its_file_each_time() {
    let (port, seen) = stand_in(|head| {
        if head.starts_with("GET /v1/credentials ") && head.contains("Authorization: pod-token") {
            (200, CREDS.replace("\"Code\":\"Success\",", ""))
        } else {
            (401, "{}".into())
        }
    })
    .await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "pod-token\n").unwrap();
    let agent = Container::from_vars(&vars(vec![
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://127.0.0.1:{port}/v1/credentials"),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            file.path().display().to_string(),
        ),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(agent.fetch().await.unwrap().0.secret_access_key, "secret");
    // The token rotates: the next fetch reads the file again.
    std::fs::write(file.path(), "rotated").unwrap();
    assert!(agent.fetch().await.err().unwrap().contains("401"));
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn urls_and_answers() {
    assert_eq!(
        split_url("http://169.254.170.2/v2/credentials/x").unwrap(),
        ("169.254.170.2".into(), 80, "/v2/credentials/x".into())
    );
    assert_eq!(
        split_url("http://[fd00:ec2::23]:8080/v1").unwrap(),
        ("fd00:ec2::23".into(), 8080, "/v1".into())
    );
    assert_eq!(
        split_url("http://[fd00:ec2::23]/v1/credentials").unwrap(),
        ("fd00:ec2::23".into(), 80, "/v1/credentials".into())
    );
    assert_eq!(
        split_url("http://169.254.169.254").unwrap(),
        ("169.254.169.254".into(), 80, "/".into())
    );
    assert!(split_url("https://example.com/").is_err());
    let e = parse(
        r#"{"Code":"AssumeRoleUnauthorizedAccess","AccessKeyId":"","SecretAccessKey":""}"#,
        "x",
    )
    .err()
    .unwrap();
    assert!(e.contains("AssumeRoleUnauthorizedAccess"), "{e}");
}
