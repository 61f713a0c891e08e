//! Event-stream frames (SubscribeToShard's answer, which strait also reads as a client of an
//! upstream Kinesis): decode frame after frame; whatever decodes must re-encode to the same
//! bytes when its headers are all strings. The harness writes the two CRC-32s each frame
//! declares it needs (prelude and message), so the fuzzer reaches the headers behind them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strait::protocol::kinesis::eventstream::{self, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let mut data = data.to_vec();
    with_crcs(&mut data);
    let data = &data[..];
    let mut at = 0;
    while at < data.len() {
        let Ok((message, used)) = eventstream::decode(&data[at..]) else {
            return;
        };
        assert!(
            used > 0 && used <= data.len() - at,
            "a frame uses some of what is there"
        );
        let strings: Option<Vec<(&str, &str)>> = message
            .headers
            .iter()
            .map(|(name, value)| match value {
                // The encoder writes values up to i16::MAX bytes (what strait sends); the
                // decoder reads the wire's u16.
                HeaderValue::String(s) if s.len() <= i16::MAX as usize => {
                    Some((name.as_str(), s.as_str()))
                }
                _ => None,
            })
            .collect();
        if let Some(headers) = strings {
            let again = eventstream::encode(&headers, &message.payload);
            assert_eq!(
                &again[..],
                &data[at..at + used],
                "decode then encode is the identity"
            );
        }
        at += used;
    }
});

/// Writes the prelude and message CRCs of each frame whose declared length fits.
fn with_crcs(data: &mut [u8]) {
    let mut at = 0;
    while data.len() - at >= 16 {
        let total = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if total < 16 || total > data.len() - at {
            return;
        }
        let frame = &mut data[at..at + total];
        let prelude = crc32fast::hash(&frame[..8]);
        frame[8..12].copy_from_slice(&prelude.to_be_bytes());
        let message = crc32fast::hash(&frame[..total - 4]);
        frame[total - 4..].copy_from_slice(&message.to_be_bytes());
        at += total;
    }
}
