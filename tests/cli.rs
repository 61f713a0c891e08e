//! The `strait` command as an operator runs it: `check-config` prints the effective
//! configuration as YAML that `serve` takes back, and `serve`'s output, redirected to a file
//! or a log pipeline, has each event once and no colour codes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/strait.yaml")
}

/// `strait check-config --config <path>` with only the given `STRAIT_*` variables.
fn check_config(path: &Path, vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strait"));
    cmd.args(["check-config", "--config"]).arg(path);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STRAIT_")) {
        cmd.env_remove(k);
    }
    cmd.envs(vars.iter().copied()).output().unwrap()
}

#[test]
fn check_config_prints_yaml_that_reads_back_the_same() {
    let first = check_config(
        &shipped_config(),
        &[("STRAIT_KINESIS__LISTEN", "0.0.0.0:4567")],
    );
    assert!(first.status.success(), "{first:?}");
    let yaml = String::from_utf8(first.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.trim_end().ends_with(": ok"), "{stderr}");
    let tree: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("standard output is YAML");
    assert_eq!(tree["kinesis"]["listen"], "0.0.0.0:4567");
    assert!(
        yaml.contains("listen: 0.0.0.0:4567  # from STRAIT_KINESIS__LISTEN"),
        "{yaml}"
    );

    // Saved and checked again, with no variables: the same configuration.
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("effective.yaml");
    std::fs::write(&saved, &yaml).unwrap();
    let second = check_config(&saved, &[]);
    assert!(second.status.success(), "{second:?}");
    let again: serde_yaml::Value = serde_yaml::from_slice(&second.stdout).unwrap();
    assert_eq!(again, tree);
}

#[test]
fn check_config_never_prints_a_secret() {
    let out = check_config(
        &shipped_config(),
        &[
            ("STRAIT_BACKEND__TYPE", "kafka"),
            ("STRAIT_BACKEND__KAFKA__SASL__MECHANISM", "PLAIN"),
            ("STRAIT_BACKEND__KAFKA__SASL__USERNAME", "strait"),
            ("STRAIT_BACKEND__KAFKA__SASL__PASSWORD", "s3cr3t-pa55word"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("s3cr3t"), "{all}");
    let tree: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(tree["backend"]["kafka"]["sasl"]["password"], "<redacted>");
}

#[test]
fn check_config_refuses_a_bad_log_level() {
    let out = check_config(
        &shipped_config(),
        &[("STRAIT_LOG__LEVEL", "info,strait=loud")],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("log.level"),
        "{out:?}"
    );
}

/// Runs `serve` on free ports with stdout and stderr piped (as in a container), waits until
/// the Kinesis listener is up (`announced` says how to tell from one output line), stops it
/// with SIGTERM and returns (stdout, stderr).
fn serve_redirected(vars: &[(&str, &str)], announced: fn(&str) -> bool) -> (String, String) {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strait"));
    cmd.args(["serve", "--config"])
        .arg(shipped_config())
        .env_remove("RUST_LOG")
        .env("STRAIT_DATA_DIR", data.path())
        .env("STRAIT_KINESIS__LISTEN", "127.0.0.1:0")
        .env("STRAIT_KAFKA__LISTEN", "127.0.0.1:0")
        .env("STRAIT_KAFKA__ADVERTISED_ADDRESS", "127.0.0.1:0")
        .env("STRAIT_ADMIN__LISTEN", "127.0.0.1:0")
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(bool, String)>();
    for (is_err, pipe) in [
        (
            false,
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        ),
        (true, Box::new(child.stderr.take().unwrap())),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send((is_err, line));
            }
        });
    }
    drop(tx);
    let (mut out, mut err) = (String::new(), String::new());
    let mut push = |(is_err, line): (bool, String)| {
        let to = if is_err { &mut err } else { &mut out };
        to.push_str(&line);
        to.push('\n');
        announced(&line)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("strait did not start");
        if push(line) {
            break;
        }
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        push(line);
    }
    assert!(status.success(), "strait exited {status:?}\n{out}\n{err}");
    (out, err)
}

#[test]
fn text_logs_have_no_colour_and_each_event_once() {
    let (out, err) = serve_redirected(&[], |l| l.starts_with("strait: kinesis listening on "));
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in redirected logs:\n{err}"
    );
    assert!(err.contains("shutting down"), "{err}");
    for listener in ["kinesis", "kafka", "admin"] {
        let line = format!("strait: {listener} listening on ");
        assert_eq!(out.matches(&line).count(), 1, "{out}");
        assert!(!err.contains("listening"), "announced twice:\n{err}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (out, err) = serve_redirected(&[("STRAIT_LOG__FORMAT", "json")], |l| {
        l.contains("\"listener\":\"kinesis\"")
    });
    assert!(out.is_empty(), "standard output with JSON logs: {out}");
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    for listener in ["kinesis", "kafka", "admin"] {
        let n = events.iter().filter(|e| e["listener"] == listener).count();
        assert_eq!(n, 1, "{err}");
    }
    assert!(events.iter().all(|e| e["level"].is_string()), "{err}");
    assert!(
        events.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("shutting down"))),
        "{err}"
    );
}
