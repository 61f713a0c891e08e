//! The SigV4 `Authorization` header as a client sends it, and the canonical request built
//! from it over a request with fuzzed headers, path and query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strait::protocol::aws::sigv4;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let authorization = lines.next().unwrap_or_default();
    let Ok(auth) = sigv4::parse_authorization(authorization) else {
        return;
    };
    let target = lines.next().unwrap_or("/");
    let mut request = http::Request::builder().method("POST").uri(target);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let _ = sigv4::expected_signature(
        &parts,
        b"{}",
        &auth,
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    );
});
