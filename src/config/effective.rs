//! The effective configuration as YAML, what `strait check-config` prints: the file with its
//! `STRAIT_*` overrides applied, each overridden key marked with the variable that set it, and
//! secrets shown as `<redacted>`. Without a secret set, the text reads back into `serve` as
//! the same configuration.

use super::Config;

/// One key an environment variable set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The key's path, lowercased (`["backend", "kafka", "bootstrap"]`).
    pub keys: Vec<String>,
    /// The variable (`STRAIT_BACKEND__KAFKA__BOOTSTRAP`).
    pub var: String,
}

/// Keys whose values are never printed.
const SECRETS: &[&[&str]] = &[&["backend", "kafka", "sasl", "password"]];
pub(crate) const REDACTED: &str = "<redacted>";

/// `config` as YAML, with a `# from STRAIT_…` comment on each key in `overrides`.
pub fn effective_yaml(config: &Config, overrides: &[Override]) -> Result<String, String> {
    let mut tree = serde_yaml::to_value(config).map_err(|e| e.to_string())?;
    for path in SECRETS {
        if let Some(v) = lookup(&mut tree, path) {
            if !v.is_null() {
                *v = serde_yaml::Value::String(REDACTED.into());
            }
        }
    }
    let text = serde_yaml::to_string(&tree).map_err(|e| e.to_string())?;
    Ok(annotate(&text, overrides))
}

fn lookup<'a>(tree: &'a mut serde_yaml::Value, path: &[&str]) -> Option<&'a mut serde_yaml::Value> {
    path.iter().try_fold(tree, |node, key| node.get_mut(*key))
}

/// Adds the comments. Follows the key path by indentation, as serde_yaml writes it (two
/// spaces a level, sequence items at their key's indentation), and leaves block scalars'
/// lines alone: a comment there would become part of the value.
fn annotate(text: &str, overrides: &[Override]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut block_scalar_at: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if let Some(at) = block_scalar_at {
            if body.is_empty() || indent > at {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block_scalar_at = None;
        }
        let key_and_value = (!body.starts_with('-') && !body.starts_with('#'))
            .then(|| split_key(body))
            .flatten();
        let Some((key, value)) = key_and_value else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        while path.last().is_some_and(|(i, _)| *i >= indent) {
            path.pop();
        }
        path.push((indent, key));
        out.push_str(line);
        if let Some(o) = overrides
            .iter()
            .rev()
            .find(|o| o.keys.iter().eq(path.iter().map(|(_, k)| k)))
        {
            out.push_str("  # from ");
            out.push_str(&o.var);
        }
        out.push('\n');
        if value.starts_with('|') || value.starts_with('>') {
            block_scalar_at = Some(indent);
        }
    }
    out
}

/// `key: value` or `key:` into the key (unquoted) and the value text.
fn split_key(body: &str) -> Option<(String, &str)> {
    let (key, value) = if let Some(quoted) = body.strip_prefix('"') {
        let end = quoted.find("\":")?;
        (quoted[..end].to_string(), &quoted[end + 2..])
    } else if let Some(quoted) = body.strip_prefix('\'') {
        let end = quoted.find("':")?;
        (quoted[..end].to_string(), &quoted[end + 2..])
    } else {
        let end = body
            .find(": ")
            .or_else(|| body.ends_with(':').then(|| body.len() - 1))?;
        (body[..end].to_string(), &body[end + 1..])
    };
    Some((key, value.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn shipped() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/strait.yaml")
    }

    /// The printed configuration loads back as the same one.
    fn reloads_unchanged(vars: &[(&str, &str)]) {
        let (config, overrides) = Config::load_with_overrides(Some(&shipped()), env(vars)).unwrap();
        let yaml = effective_yaml(&config, &overrides).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("effective.yaml");
        std::fs::write(&path, &yaml).unwrap();
        let again = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(format!("{again:?}"), format!("{config:?}"), "{yaml}");
    }

    #[test]
    fn the_shipped_configuration_reads_back_unchanged() {
        reloads_unchanged(&[]);
    }

    #[test]
    fn overrides_read_back_unchanged_and_name_their_variable() {
        let vars = [
            ("STRAIT_KINESIS__LISTEN", "0.0.0.0:4567"),
            ("STRAIT_BACKEND__TYPE", "kafka"),
            ("STRAIT_BACKEND__KAFKA__BOOTSTRAP", "a:9092, b:9093"),
            ("STRAIT_ACCOUNT_ID", "012345678901"),
            ("STRAIT_LOG__FORMAT", "json"),
        ];
        reloads_unchanged(&vars);
        let (config, overrides) =
            Config::load_with_overrides(Some(&shipped()), env(&vars)).unwrap();
        let yaml = effective_yaml(&config, &overrides).unwrap();
        for (var, line) in [
            ("STRAIT_KINESIS__LISTEN", "  listen: 0.0.0.0:4567"),
            ("STRAIT_BACKEND__TYPE", "  type: kafka"),
            ("STRAIT_BACKEND__KAFKA__BOOTSTRAP", "    bootstrap:"),
            ("STRAIT_ACCOUNT_ID", "account_id: '012345678901'"),
            ("STRAIT_LOG__FORMAT", "  format: json"),
        ] {
            let want = format!("{line}  # from {var}");
            assert!(
                yaml.lines().any(|l| l == want),
                "no line {want:?} in\n{yaml}"
            );
        }
        // Only those: Kafka's listen (not overridden) has no comment.
        assert_eq!(yaml.matches("# from").count(), vars.len(), "{yaml}");
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed["backend"]["kafka"]["bootstrap"][1], "b:9093");
    }

    #[test]
    fn a_secret_is_redacted() {
        let vars = [
            ("STRAIT_BACKEND__TYPE", "kafka"),
            ("STRAIT_BACKEND__KAFKA__SASL__MECHANISM", "SCRAM-SHA-512"),
            ("STRAIT_BACKEND__KAFKA__SASL__USERNAME", "strait"),
            (
                "STRAIT_BACKEND__KAFKA__SASL__PASSWORD",
                "hunter2-very-secret",
            ),
        ];
        let (config, overrides) =
            Config::load_with_overrides(Some(&shipped()), env(&vars)).unwrap();
        let yaml = effective_yaml(&config, &overrides).unwrap();
        assert!(!yaml.contains("hunter2"), "{yaml}");
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed["backend"]["kafka"]["sasl"]["password"], REDACTED);
        assert!(
            !format!("{config:?}").contains("hunter2"),
            "Debug shows the password"
        );
    }

    #[test]
    fn block_scalars_and_quoted_keys_keep_their_text() {
        let text = "a:\n  b: |-\n    x: 1\n    y\n  c: 2\n\"q k\": 3\n";
        let overrides = [
            Override {
                keys: vec!["a".into(), "b".into()],
                var: "V1".into(),
            },
            Override {
                keys: vec!["a".into(), "c".into()],
                var: "V2".into(),
            },
            Override {
                keys: vec!["q k".into()],
                var: "V3".into(),
            },
            Override {
                keys: vec!["x".into()],
                var: "NOT_A_KEY".into(),
            },
        ];
        assert_eq!(
            annotate(text, &overrides),
            "a:\n  b: |-  # from V1\n    x: 1\n    y\n  c: 2  # from V2\n\"q k\": 3  # from V3\n"
        );
    }
}
