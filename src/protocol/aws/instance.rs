//! Credentials from the machine strait runs on: the container agent of ECS and of EKS Pod
//! Identity (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI`, with the authorization
//! token read again for each fetch, since it rotates), and the EC2 instance profile through
//! the instance metadata service, version 2 only (a session token first, then the role's
//! credentials). Both answer the same JSON; both are plain HTTP on link-local addresses.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::credentials::AwsCredentials;
use super::http1::plain_request;
use super::sts::parse_time;

/// The SDKs' default: the metadata services answer at once or not at all.
const TIMEOUT: Duration = Duration::from_secs(1);

/// What both services answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    expiration: Option<String>,
    /// IMDS only: "Success" when the role's credentials are there.
    code: Option<String>,
}

fn parse(body: &str, who: &str) -> Result<(AwsCredentials, SystemTime), String> {
    let a: Answer =
        serde_json::from_str(body).map_err(|e| format!("{who}: an unexpected answer: {e}"))?;
    if let Some(code) = a.code.as_deref().filter(|c| *c != "Success") {
        return Err(format!("{who}: the credentials are not available ({code})"));
    }
    // Long-lived keys have no expiry; look again in an hour all the same.
    let expires = match &a.expiration {
        Some(t) => parse_time(t).ok_or_else(|| format!("{who}: bad Expiration {t:?}"))?,
        None => SystemTime::now() + Duration::from_secs(3600),
    };
    Ok((
        AwsCredentials {
            access_key_id: a.access_key_id,
            secret_access_key: a.secret_access_key,
            session_token: a.token,
        },
        expires,
    ))
}

/// host, port and path of an `http://` URL.
fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// is supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // "[v6]:port", "[v6]", "host:port" or "host".
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !authority.starts_with('[') || h.ends_with(']') => {
            (h, p.parse().map_err(|_| format!("{url:?}: bad port"))?)
        }
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// Where the ECS (or EKS Pod Identity) agent serves this task's credentials.
pub struct Container {
    host: String,
    port: u16,
    path: String,
    token_file: Option<std::path::PathBuf>,
    token: Option<String>,
}

impl Container {
    /// From the variables the agent sets; `None` when there are none.
    pub fn from_vars(var: &impl Fn(&str) -> Option<String>) -> Result<Option<Container>, String> {
        let url = match (
            var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
            var("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        ) {
            (Some(relative), _) => format!("http://169.254.170.2{relative}"),
            (None, Some(full)) => full,
            (None, None) => return Ok(None),
        };
        let (host, port, path) =
            split_url(&url).map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_*: {e}"))?;
        Ok(Some(Container {
            host,
            port,
            path,
            token_file: var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").map(Into::into),
            token: var("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        }))
    }

    pub async fn fetch(&self) -> Result<(AwsCredentials, SystemTime), String> {
        let who = "AWS container credentials";
        let token = match &self.token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| {
                        format!(
                            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: {e}",
                            f.display()
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            None => self.token.clone(),
        };
        let headers: Vec<(&str, &str)> = token
            .as_deref()
            .map(|t| vec![("Authorization", t)])
            .unwrap_or_default();
        let (status, body) = plain_request(
            &self.host, self.port, "GET", &self.path, &headers, TIMEOUT, who,
        )
        .await?;
        if status != 200 {
            return Err(format!(
                "{who} {}:{}: HTTP {status}: {}",
                self.host,
                self.port,
                body.trim()
            ));
        }
        parse(&body, who)
    }
}

/// The EC2 instance metadata service (IMDSv2).
pub struct InstanceMetadata {
    host: String,
    port: u16,
}

const TOKEN_PATH: &str = "/latest/api/token";
const ROLES_PATH: &str = "/latest/meta-data/iam/security-credentials/";

impl InstanceMetadata {
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT` or 169.254.169.254; `None` when
    /// `AWS_EC2_METADATA_DISABLED` is true.
    pub fn from_vars(
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<InstanceMetadata>, String> {
        if var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let url = var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .unwrap_or_else(|| "http://169.254.169.254".into());
        let (host, port, _) =
            split_url(&url).map_err(|e| format!("AWS_EC2_METADATA_SERVICE_ENDPOINT: {e}"))?;
        Ok(Some(InstanceMetadata { host, port }))
    }

    pub async fn fetch(&self) -> Result<(AwsCredentials, SystemTime), String> {
        let who = "EC2 instance metadata";
        let get = |path: String, headers: Vec<(&'static str, String)>, method: &'static str| async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, body) =
                plain_request(&self.host, self.port, method, &path, &h, TIMEOUT, who).await?;
            if status != 200 {
                return Err(format!(
                    "{who} {}:{}{path}: HTTP {status}",
                    self.host, self.port
                ));
            }
            Ok(body)
        };
        let token = get(
            TOKEN_PATH.into(),
            vec![("X-aws-ec2-metadata-token-ttl-seconds", "21600".into())],
            "PUT",
        )
        .await?;
        let auth = vec![("X-aws-ec2-metadata-token", token.trim().to_string())];
        let roles = get(ROLES_PATH.into(), auth.clone(), "GET").await?;
        let role = roles
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .ok_or_else(|| format!("{who}: the instance has no IAM role"))?
            .to_string();
        let body = get(format!("{ROLES_PATH}{role}"), auth, "GET").await?;
        parse(&body, who)
    }
}

#[cfg(test)]
mod tests;
