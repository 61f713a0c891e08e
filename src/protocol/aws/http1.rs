//! One HTTP/1.1 exchange with `Connection: close`, enough for the credential endpoints (STS,
//! the ECS and EKS Pod Identity agents, EC2 instance metadata): the answer is read to EOF and
//! split into status and body (plain, sized or chunked).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `request` and reads the whole answer (at most 64 KiB, plenty for credentials).
pub async fn exchange(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    request: &str,
    who: &str,
) -> Result<Vec<u8>, String> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{who}: {e}"))?;
    let mut raw = Vec::new();
    // A peer that closes TLS without close_notify ends the read with UnexpectedEof; what came
    // before is still the answer, and `split_answer` checks it is whole.
    match (&mut stream).take(64 * 1024).read_to_end(&mut raw).await {
        Ok(_) => Ok(raw),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(format!("{who}: {e}")),
    }
}

/// One request over plain HTTP to `host:port`, within `timeout`: (status, body).
pub async fn plain_request(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
    who: &str,
) -> Result<(u16, String), String> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: 0\r\nUser-Agent: strait/{}\r\n", env!("CARGO_PKG_VERSION"));
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let call = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("{who} {host}:{port}: {e}"))?;
        split_answer(&exchange(tcp, &request, who).await?, who)
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| format!("{who} {host}:{port}: no answer in {timeout:?}"))?
}

/// An answer's status and body.
pub fn split_answer(raw: &[u8], who: &str) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{who}: an incomplete HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{who}: no HTTP status"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let body = if chunked {
        dechunk(body, who)?
    } else if let Some(n) = length {
        body.get(..n)
            .ok_or_else(|| format!("{who}: the answer ended before its Content-Length"))?
            .to_string()
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str, who: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body
            .split_once("\r\n")
            .ok_or_else(|| format!("{who}: a bad chunk"))?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("{who}: a bad chunk size"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest
            .get(..size)
            .ok_or_else(|| format!("{who}: a short chunk"))?;
        out.push_str(chunk);
        body = rest.get(size..).unwrap_or("").trim_start_matches("\r\n");
    }
}
