//! Where log events go and how they look (`log.level`, `log.format`), and the start-up
//! announcements tools read to find strait's ports. Each event is written once: as a line of
//! text (coloured only on a terminal) or as one JSON object.

use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

static JSON: AtomicBool = AtomicBool::new(false);

/// The filter `log.level` (or `RUST_LOG`, which wins when set) gives, or why it is not one.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => {
            EnvFilter::try_new(&from_env).map_err(|e| format!("RUST_LOG {from_env:?}: {e}"))
        }
        _ => EnvFilter::try_new(level).map_err(|e| format!("log.level {level:?}: {e}")),
    }
}

/// Installs the process's log subscriber (standard error). Call once, before anything logs.
pub fn init(log: &LogConfig) -> Result<(), String> {
    let filter = filter(&log.level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match log.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => {
            JSON.store(true, Ordering::Relaxed);
            builder.json().flatten_event(true).try_init()
        }
    };
    installed.map_err(|e| format!("log subscriber: {e}"))
}

/// A listener is up. With text logs: `strait: <what> listening on <addr>` on standard output
/// (only there: tools that start strait on port 0 read it). With JSON logs: one event.
pub fn listening(what: &str, addr: &dyn Display) {
    if JSON.load(Ordering::Relaxed) {
        tracing::info!(listener = what, %addr, "listening");
    } else {
        println!("strait: {what} listening on {addr}");
    }
}
