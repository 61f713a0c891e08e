//! NextTokens for ListStreams and ListShards: sealed (HMAC) lists of fields that expire
//! after 300 s, as AWS's do (ExpiredNextTokenException).

use super::Ctx;
use crate::core::now_ms;
use crate::kinesis::error::ApiError;

const TOKEN_TTL_MS: i64 = 300_000;

/// Seals `fields` (none may contain a newline) under a token `kind`.
pub fn seal(ctx: &Ctx, kind: &str, fields: &[&str]) -> String {
    let mut payload = format!("{kind}\n{}", now_ms());
    for f in fields {
        payload.push('\n');
        payload.push_str(f);
    }
    ctx.core.signer().seal(payload.as_bytes())
}

/// Opens a token of `kind` with `n` fields; the last field may hold anything.
pub fn open(ctx: &Ctx, kind: &str, n: usize, token: &str) -> Result<Vec<String>, ApiError> {
    let invalid = || ApiError::invalid_argument(format!("Invalid NextToken: {token}"));
    let raw = ctx.core.signer().open(token).ok_or_else(invalid)?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let parts: Vec<&str> = text.splitn(n + 2, '\n').collect();
    if parts.len() != n + 2 || parts[0] != kind {
        return Err(invalid());
    }
    let issued: i64 = parts[1].parse().map_err(|_| invalid())?;
    if now_ms() - issued > TOKEN_TTL_MS {
        return Err(ApiError {
            code: "ExpiredNextTokenException",
            message: format!("The NextToken has expired: {token}"),
            status: 400,
        });
    }
    Ok(parts[2..].iter().map(|s| s.to_string()).collect())
}
