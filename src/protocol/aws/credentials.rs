//! AWS credentials and where they come from: the environment's keys (AWS_ACCESS_KEY_ID, …), or,
//! on EKS with IAM roles for service accounts (IRSA), a web identity: the projected token in
//! AWS_WEB_IDENTITY_TOKEN_FILE exchanged for the role in AWS_ROLE_ARN at STS
//! (AssumeRoleWithWebIdentity, unsigned), cached and renewed five minutes before it expires.
//! The token file is read again for each exchange, since Kubernetes rotates it. STS is
//! reached at AWS_ENDPOINT_URL_STS (or AWS_ENDPOINT_URL), else `https://sts.<region>.amazonaws.com`,
//! trusting AWS_CA_BUNDLE or the system bundle.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use super::sts;

/// An access key, its secret and, for temporary credentials, the session token.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Credentials are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

pub enum AwsProvider {
    /// Fixed keys from the environment.
    Static(AwsCredentials),
    WebIdentity {
        exchange: sts::WebIdentity,
        cached: Mutex<Option<(AwsCredentials, SystemTime)>>,
    },
}

impl AwsProvider {
    /// The source the environment names, checked at start-up (nothing is fetched yet):
    /// static keys win, as in the AWS SDKs' default chain.
    pub fn from_env(region: &str) -> Result<Arc<AwsProvider>, String> {
        Self::from_vars(region, |k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    fn from_vars(
        region: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Arc<AwsProvider>, String> {
        if let Some(access_key_id) = var("AWS_ACCESS_KEY_ID") {
            let secret_access_key = var("AWS_SECRET_ACCESS_KEY")
                .ok_or("AWS_MSK_IAM: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")?;
            return Ok(Arc::new(AwsProvider::Static(AwsCredentials {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            })));
        }
        match (var("AWS_WEB_IDENTITY_TOKEN_FILE"), var("AWS_ROLE_ARN")) {
            (Some(token_file), Some(role_arn)) => {
                // China's regions live under their own domain.
                let domain = if region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                let endpoint = var("AWS_ENDPOINT_URL_STS")
                    .or_else(|| var("AWS_ENDPOINT_URL"))
                    .unwrap_or_else(|| format!("https://sts.{region}.{domain}"));
                let exchange = sts::WebIdentity::new(
                    token_file.into(),
                    role_arn,
                    var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "strait".into()),
                    &endpoint,
                    var("AWS_CA_BUNDLE").map(Into::into),
                )?;
                Ok(Arc::new(AwsProvider::WebIdentity {
                    exchange,
                    cached: Mutex::new(None),
                }))
            }
            (Some(_), None) => {
                Err("AWS_MSK_IAM: AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not".into())
            }
            _ => Err(
                "AWS_MSK_IAM needs AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (IRSA)"
                    .into(),
            ),
        }
    }

    /// Credentials good for at least `RENEW_BEFORE` more.
    pub async fn current(&self) -> Result<AwsCredentials, String> {
        match self {
            AwsProvider::Static(c) => Ok(c.clone()),
            AwsProvider::WebIdentity { exchange, cached } => {
                // One exchange at a time: connections opened together share its answer.
                let mut cached = cached.lock().await;
                if let Some((c, expires)) = cached.as_ref() {
                    if SystemTime::now() + RENEW_BEFORE < *expires {
                        return Ok(c.clone());
                    }
                }
                let (c, expires) = match exchange.assume_role().await {
                    Ok(fresh) => fresh,
                    // A failed renewal while the old credentials still hold: use them, and
                    // try again at the next login.
                    Err(e) => match cached.as_ref() {
                        Some((c, expires)) if SystemTime::now() < *expires => {
                            tracing::warn!(error = %e, "renewing AWS credentials failed; using the current ones until they expire");
                            return Ok(c.clone());
                        }
                        _ => return Err(e),
                    },
                };
                tracing::info!(
                    access_key_id = %c.access_key_id,
                    expires = ?expires,
                    "AWS credentials from the web identity token"
                );
                *cached = Some((c.clone(), expires));
                Ok(c)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn provider(vars: &[(&str, &str)]) -> Result<Arc<AwsProvider>, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AwsProvider::from_vars("eu-west-1", |k| vars.get(k).cloned())
    }

    #[test]
    fn static_keys_win_and_web_identity_needs_a_role() {
        let p = provider(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ])
        .unwrap();
        assert!(matches!(*p, AwsProvider::Static(_)));
        let p = provider(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ])
        .unwrap();
        assert!(matches!(*p, AwsProvider::WebIdentity { .. }));
        let e = provider(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")])
            .err()
            .unwrap();
        assert!(e.contains("AWS_ROLE_ARN"), "{e}");
        let e = provider(&[]).err().unwrap();
        assert!(e.contains("IRSA"), "{e}");
        let e = provider(&[("AWS_ACCESS_KEY_ID", "AKID")]).err().unwrap();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
    }
}
