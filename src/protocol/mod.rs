//! Protocol leaves: the wire formats strait speaks, usable by a server (the front ends) and by a
//! client (the Kafka backend, the coming Kinesis backend and migration mirror). Nothing here
//! imports the rest of strait; `tests/layering.rs` keeps it so.

pub mod aws;
pub mod kafka;
pub mod kinesis;
pub mod x509;
