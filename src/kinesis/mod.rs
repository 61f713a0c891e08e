//! The Kinesis Data Streams front end: HTTP server, JSON and CBOR codecs, request validation
//! and the operations. Decodes requests, calls the core, encodes responses; on the Kinesis
//! backend, forwards them to the upstream instead (`passthrough.rs`).

pub mod auth;
pub mod error;
pub mod ops;
pub mod passthrough;
pub mod server;
pub mod split;
pub mod tls;
pub mod traffic;
pub mod validate;
