//! `strait migrate …`: the CLI asks a running replica over its admin port (`admin.listen`
//! from the configuration, or `--admin URL`), so it acts on the state the replicas share.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use super::status::MigrationStatus;
use crate::config::Config;

/// `strait migrate status`: a table, or the JSON document with `--json`.
pub fn status(config: &Path, admin: Option<&str>, json: bool) -> ExitCode {
    let answer = admin_url(config, admin).and_then(|url| get(&url, "/migration"));
    let body = match answer {
        Ok((200, body)) => body,
        Ok((status, body)) => {
            eprintln!("strait migrate status: HTTP {status}: {}", body.trim());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("strait migrate status: {e}");
            return ExitCode::FAILURE;
        }
    };
    let doc: MigrationStatus = match serde_json::from_str(&body) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("strait migrate status: the replica answered something else: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serialises")
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<32} {:<13} {:>12} {:>10} {:>14}  last error",
        "stream", "state", "lag records", "lag ms", "mirrored"
    );
    for s in &doc.streams {
        println!(
            "{:<32} {:<13} {:>12} {:>10} {:>14}  {}",
            s.name,
            s.state.as_str(),
            s.lag_records,
            s.lag_ms,
            s.mirrored_records,
            s.last_error.as_deref().unwrap_or("-")
        );
    }
    ExitCode::SUCCESS
}

/// `host:port` of the replica's admin listener.
pub(super) fn admin_url(config: &Path, admin: Option<&str>) -> Result<String, String> {
    if let Some(url) = admin {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("--admin {url:?}: an http:// URL (the admin port speaks plain HTTP)")
        })?;
        return Ok(rest.trim_end_matches('/').to_string());
    }
    let c = Config::load(Some(config), std::env::vars()).map_err(|e| e.to_string())?;
    if c.admin.listen.is_empty() {
        return Err("admin.listen is empty in the configuration: pass --admin URL".into());
    }
    let addr: std::net::SocketAddr = c
        .admin
        .listen
        .parse()
        .map_err(|e| format!("admin.listen: {e}"))?;
    // A wildcard listener is reached on loopback from here.
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    Ok(format!("{host}:{}", addr.port()))
}

/// `strait migrate cutover` / `rollback`: asks the replica and waits for its answer; exit 0
/// with the stream's new state, or non-zero with the reason.
pub fn action(
    config: &Path,
    admin: Option<&str>,
    stream: &str,
    action: &str,
    timeout: Option<u64>,
) -> ExitCode {
    let path = match timeout {
        Some(t) => format!("/migration/{stream}/{action}?timeout={t}"),
        None => format!("/migration/{stream}/{action}"),
    };
    let answer = admin_url(config, admin).and_then(|url| request(&url, "POST", &path, b""));
    match answer {
        Ok((200, body)) => {
            let state = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["state"].as_str().map(str::to_string))
                .unwrap_or_default();
            println!("{stream}: {state}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let why = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("HTTP {status}: {}", body.trim()));
            eprintln!("strait migrate {action} {stream}: {why}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("strait migrate {action} {stream}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn get(host_port: &str, path: &str) -> Result<(u16, String), String> {
    request(host_port, "GET", path, b"")
}

/// One HTTP/1.1 request: (status, body).
pub(super) fn request(
    host_port: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, String), String> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .map_err(|e| format!("{host_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host_port}: no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot reach the admin port at {host_port}: {e}"))?;
    // A cutover answers when it is done (its timeout is at most an hour).
    s.set_read_timeout(Some(Duration::from_secs(3700))).ok();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| format!("{host_port}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("{host_port}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{host_port}: not an HTTP answer"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{host_port}: not an HTTP answer"))?;
    Ok((status, body.to_string()))
}
