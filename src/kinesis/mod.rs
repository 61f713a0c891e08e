//! The Kinesis Data Streams front end: HTTP server, JSON and CBOR codecs, request validation
//! and the operations. Decodes requests, calls the core, encodes responses.

pub mod aggregation;
pub mod auth;
pub mod codec;
pub mod error;
pub mod eventstream;
pub mod ops;
pub mod server;
pub mod sigv4;
pub mod tls;
pub mod validate;
