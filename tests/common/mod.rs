//! Starts the real `strait` binary on a free port with a temporary data directory, and talks
//! to it over plain HTTP/1.1, so integration tests exercise what users run.

#![allow(dead_code)]

pub mod efo;
pub mod kafka;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub port: u16,
    pub kafka_port: u16,
    pub admin_port: u16,
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
    /// The open-file limit strait starts under (`ulimit -n`), when not inherited.
    nofile: Option<u64>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts with extra environment (configuration overrides).
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        Server::start_limited(None, env)
    }

    /// Starts under the open-file limit `nofile` (soft and hard), with extra environment.
    pub fn start_limited(nofile: Option<u64>, env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Server {
            port: 0,
            kafka_port: 0,
            admin_port: 0,
            data_dir: tmp.path().to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            nofile,
            child: None,
            _tmp: Some(tmp),
        };
        s.spawn();
        s
    }

    pub fn spawn(&mut self) {
        self.port = 0;
        self.kafka_port = 0;
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/strait.yaml");
        // Port 0 everywhere: strait reports the ports it got, so parallel tests never race
        // for a port.
        let mut command = Command::new(env!("CARGO_BIN_EXE_strait"));
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .args(["serve", "--config"])
            .arg(config)
            .env("STRAIT_DATA_DIR", &self.data_dir)
            .env("STRAIT_KINESIS__LISTEN", "127.0.0.1:0")
            .env("STRAIT_KAFKA__LISTEN", "127.0.0.1:0")
            .env("STRAIT_KAFKA__ADVERTISED_ADDRESS", "127.0.0.1:0")
            .env("STRAIT_KAFKA__GROUP_INITIAL_REBALANCE_DELAY_MS", "100")
            .env("STRAIT_ADMIN__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start strait");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port_of = |line: &str| line.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        while self.port == 0 || self.kafka_port == 0 {
            let line = lines
                .next()
                .expect("strait exited before listening")
                .unwrap();
            if line.starts_with("strait: kinesis listening on ") {
                self.port = port_of(&line);
            } else if line.starts_with("strait: kafka listening on ") {
                self.kafka_port = port_of(&line);
            } else if line.starts_with("strait: admin listening on ") {
                self.admin_port = port_of(&line);
            }
        }
        // Keep draining stdout so strait never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("strait runs").id()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_sigterm(c.id());
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "strait ignored SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// POSTs a Kinesis request; returns (status, content type, body).
    pub fn call(&self, op: &str, content_type: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        raw_request(
            self.port,
            "POST",
            &[
                ("X-Amz-Target", &format!("Kinesis_20131202.{op}")),
                ("Content-Type", content_type),
            ],
            body,
        )
    }

    pub fn json(&self, op: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let (status, _, bytes) = self.call(
            op,
            "application/x-amz-json-1.1",
            body.to_string().as_bytes(),
        );
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// A JSON call that must succeed.
    pub fn ok(&self, op: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, v) = self.json(op, body);
        assert_eq!(status, 200, "{op} failed: {v}");
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill").arg(pid.to_string()).status();
}

pub fn raw_request(
    port: u16,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response head");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, out[split + 4..].to_vec())
}
