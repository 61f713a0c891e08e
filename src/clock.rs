//! Wall-clock time in milliseconds, the one clock every layer reads. Unit tests read tokio's
//! clock instead, anchored to the wall clock once, so `tokio::time::pause` and `advance` move
//! it: iterator expiry, leases and session timeouts are tested without sleeping.

/// Milliseconds since the Unix epoch.
#[cfg(not(test))]
pub fn now_ms() -> i64 {
    wall_ms()
}

#[cfg(test)]
pub fn now_ms() -> i64 {
    use std::sync::OnceLock;
    static ANCHOR: OnceLock<(i64, std::time::Instant)> = OnceLock::new();
    // Anchored a minute back, so a paused runtime built shortly before the first call still
    // reads a time that moves.
    let (wall, at) = *ANCHOR.get_or_init(|| {
        let back = std::time::Duration::from_secs(60);
        (wall_ms() - 60_000, std::time::Instant::now() - back)
    });
    let now = tokio::time::Instant::now().into_std();
    wall + now.saturating_duration_since(at).as_millis() as i64
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
