//! AWS credentials and where they come from, in the AWS SDKs' default order: the environment's
//! keys (AWS_ACCESS_KEY_ID, …); a web identity (EKS IRSA: the projected token in
//! AWS_WEB_IDENTITY_TOKEN_FILE exchanged for AWS_ROLE_ARN at STS, unsigned, the token file read
//! again for each exchange since Kubernetes rotates it); the ECS or EKS Pod Identity container
//! agent; and last the EC2 instance profile (IMDSv2). Or one named profile of the shared
//! credentials file. Temporary credentials are cached and renewed five minutes before they
//! expire. STS is reached at AWS_ENDPOINT_URL_STS (or AWS_ENDPOINT_URL), else
//! `https://sts.<region>.amazonaws.com`, trusting AWS_CA_BUNDLE or the system bundle.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use super::instance::{Container, InstanceMetadata};
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

const EVERY_SOURCE: &str = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials (AWS_PROFILE, else default), or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (IRSA), or AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI (ECS, EKS Pod Identity), or run on EC2 with an instance profile";

/// Where temporary credentials are fetched from.
pub enum Source {
    WebIdentity(sts::WebIdentity),
    Container(Container),
    InstanceProfile(InstanceMetadata),
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Source::WebIdentity(_) => "the web identity token",
            Source::Container(_) => "the container credentials agent",
            Source::InstanceProfile(_) => "the EC2 instance profile",
        }
    }

    async fn fetch(&self) -> Result<(AwsCredentials, SystemTime), String> {
        match self {
            Source::WebIdentity(w) => w.assume_role().await,
            Source::Container(c) => c.fetch().await,
            Source::InstanceProfile(m) => m.fetch().await,
        }
    }
}

pub enum AwsProvider {
    /// Fixed keys, from the environment or a profile.
    Static(AwsCredentials),
    Renewed {
        source: Source,
        cached: Box<Mutex<Cached>>,
    },
}

/// What a renewed source last gave, and when it last failed.
#[derive(Default)]
pub struct Cached {
    creds: Option<(AwsCredentials, SystemTime)>,
    failed: Option<(std::time::Instant, String)>,
}

/// After a failed fetch, callers get the old credentials (while they hold) or the failure for
/// this long, instead of each waiting out another fetch.
const RETRY_AFTER: Duration = Duration::from_secs(10);

impl AwsProvider {
    /// The source the environment names, checked at start-up (nothing is fetched yet):
    /// static keys win, as in the AWS SDKs' default chain; the instance profile is the last
    /// resort (`ready` then checks it answers).
    pub fn from_env(region: &str) -> Result<Arc<AwsProvider>, String> {
        Self::from_vars(region, |k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// `default` is the chain above; any other name is a profile of the shared credentials
    /// file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials).
    pub fn from_setting(setting: &str, region: &str) -> Result<Arc<AwsProvider>, String> {
        if setting == "default" {
            return Self::from_env(region);
        }
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let path = shared_credentials_file(&var)
            .ok_or("AWS profile: neither AWS_SHARED_CREDENTIALS_FILE nor HOME is set")?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("AWS profile {setting:?}: {}: {e}", path.display()))?;
        let creds = profile_keys(&text, setting)
            .map_err(|e| format!("AWS profile {setting:?} in {}: {e}", path.display()))?;
        Ok(Arc::new(AwsProvider::Static(creds)))
    }

    fn from_vars(
        region: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Arc<AwsProvider>, String> {
        if let Some(access_key_id) = var("AWS_ACCESS_KEY_ID") {
            let secret_access_key = var("AWS_SECRET_ACCESS_KEY").ok_or(
                "AWS credentials: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            )?;
            return Ok(Arc::new(AwsProvider::Static(AwsCredentials {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            })));
        }
        // The shared credentials file's profile (AWS_PROFILE, else `default`), as the SDKs
        // look there next; a profile named explicitly must be there.
        let profile = var("AWS_PROFILE");
        if let Some(path) = shared_credentials_file(&var) {
            if let Ok(text) = std::fs::read_to_string(&path) {
                match profile_keys(&text, profile.as_deref().unwrap_or("default")) {
                    Ok(creds) => return Ok(Arc::new(AwsProvider::Static(creds))),
                    Err(e) if profile.is_some() => {
                        return Err(format!(
                            "AWS_PROFILE {:?} in {}: {e}",
                            profile.unwrap_or_default(),
                            path.display()
                        ))
                    }
                    Err(_) => {}
                }
            }
        }
        let renewed = |source| {
            Ok(Arc::new(AwsProvider::Renewed {
                source,
                cached: Box::new(Mutex::new(Cached::default())),
            }))
        };
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
                return renewed(Source::WebIdentity(exchange));
            }
            (Some(_), None) => {
                return Err(
                    "AWS credentials: AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not"
                        .into(),
                )
            }
            _ => {}
        }
        if let Some(container) = Container::from_vars(&var)? {
            return renewed(Source::Container(container));
        }
        match InstanceMetadata::from_vars(&var)? {
            Some(imds) => renewed(Source::InstanceProfile(imds)),
            None => Err(format!(
                "no AWS credentials (AWS_EC2_METADATA_DISABLED rules out the instance profile): {EVERY_SOURCE}"
            )),
        }
    }

    /// Checked at start-up. The instance profile, reached only because nothing else is set,
    /// must answer now, so a machine with no credentials at all fails to start naming every
    /// source; the other sources are fetched at first use.
    pub async fn ready(&self) -> Result<(), String> {
        match self {
            AwsProvider::Renewed {
                source: Source::InstanceProfile(_),
                ..
            } => self.current().await.map(|_| ()).map_err(|e| {
                format!(
                    "no AWS credentials: {EVERY_SOURCE} (the instance profile was tried last: {e})"
                )
            }),
            _ => Ok(()),
        }
    }

    /// Credentials good for at least `RENEW_BEFORE` more.
    pub async fn current(&self) -> Result<AwsCredentials, String> {
        match self {
            AwsProvider::Static(c) => Ok(c.clone()),
            AwsProvider::Renewed { source, cached } => {
                // One fetch at a time: connections opened together share its answer.
                let mut cached = cached.lock().await;
                let still_good = |cached: &Cached| {
                    cached
                        .creds
                        .as_ref()
                        .filter(|(_, expires)| SystemTime::now() < *expires)
                        .map(|(c, _)| c.clone())
                };
                if let Some((c, expires)) = cached.creds.as_ref() {
                    if SystemTime::now() + RENEW_BEFORE < *expires {
                        return Ok(c.clone());
                    }
                }
                if let Some((at, e)) = &cached.failed {
                    if at.elapsed() < RETRY_AFTER {
                        return still_good(&cached).ok_or_else(|| e.clone());
                    }
                }
                let (c, expires) = match source.fetch().await {
                    Ok(fresh) => fresh,
                    // A failed renewal while the old credentials still hold: use them, and
                    // try again after a pause.
                    Err(e) => {
                        cached.failed = Some((std::time::Instant::now(), e.clone()));
                        return match still_good(&cached) {
                            Some(c) => {
                                tracing::warn!(error = %e, "renewing AWS credentials failed; using the current ones until they expire");
                                Ok(c)
                            }
                            None => Err(e),
                        };
                    }
                };
                tracing::info!(
                    access_key_id = %c.access_key_id,
                    expires = ?expires,
                    "AWS credentials from {}",
                    source.name()
                );
                cached.creds = Some((c.clone(), expires));
                cached.failed = None;
                Ok(c)
            }
        }
    }
}

/// AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials.
fn shared_credentials_file(var: &impl Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    var("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| var("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials")))
}

/// The keys of `[profile]` in a shared credentials file (INI).
fn profile_keys(text: &str, profile: &str) -> Result<AwsCredentials, String> {
    let mut inside = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_string());
            match k.trim() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    Ok(AwsCredentials {
        access_key_id: id.ok_or("no aws_access_key_id")?,
        secret_access_key: secret.ok_or("no aws_secret_access_key")?,
        session_token: token,
    })
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
        assert!(matches!(
            *p,
            AwsProvider::Renewed {
                source: Source::WebIdentity(_),
                ..
            }
        ));
        let e = provider(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")])
            .err()
            .unwrap();
        assert!(e.contains("AWS_ROLE_ARN"), "{e}");
        // Nothing set: the instance profile is the last resort, unless ruled out.
        let p = provider(&[]).unwrap();
        assert!(matches!(
            *p,
            AwsProvider::Renewed {
                source: Source::InstanceProfile(_),
                ..
            }
        ));
        let e = provider(&[("AWS_EC2_METADATA_DISABLED", "true")])
            .err()
            .unwrap();
        assert!(e.contains("IRSA") && e.contains("ECS"), "{e}");
        let p = provider(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds/x")]).unwrap();
        assert!(matches!(
            *p,
            AwsProvider::Renewed {
                source: Source::Container(_),
                ..
            }
        ));
        let e = provider(&[("AWS_ACCESS_KEY_ID", "AKID")]).err().unwrap();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
    }

    #[test]
    fn profiles_are_read_from_the_shared_file() {
        let text = "# keys\n[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[team]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token = E\n";
        let c = profile_keys(text, "team").unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("C", "D")
        );
        assert_eq!(c.session_token.as_deref(), Some("E"));
        assert_eq!(profile_keys(text, "default").unwrap().access_key_id, "A");
        assert!(profile_keys(text, "other")
            .err()
            .unwrap()
            .contains("aws_access_key_id"));
    }

    /// A failing source is asked again only after a pause: requests in between get the
    /// failure at once instead of each waiting out another fetch.
    #[tokio::test]
    async fn a_failing_source_is_not_asked_again_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        let endpoint = format!("http://127.0.0.1:{port}");
        let imds = InstanceMetadata::from_vars(&|k: &str| {
            (k == "AWS_EC2_METADATA_SERVICE_ENDPOINT").then(|| endpoint.clone())
        })
        .unwrap()
        .unwrap();
        let p = AwsProvider::Renewed {
            source: Source::InstanceProfile(imds),
            cached: Box::default(),
        };
        let first = p.current().await.err().unwrap();
        assert!(first.contains("500"), "{first}");
        assert_eq!(p.current().await.err().unwrap(), first);
        assert!(p.ready().await.err().unwrap().contains("IRSA"));
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "asked again within the pause"
        );
    }
}
