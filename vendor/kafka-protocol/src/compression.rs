//! Provides compression utilities for encoding records.
//!
//! This module has implementations of gzip, Snappy, as well as a noop compression format that
//! allows encoding and decoding records into a [`Record`](crate::records::Record).

use crate::protocol::buf::{ByteBuf, ByteBufMut};
use anyhow::Result;

#[cfg(feature = "gzip")]
mod gzip;
#[cfg(feature = "lz4")]
mod lz4;
mod none;
#[cfg(feature = "snappy")]
mod snappy;
#[cfg(feature = "zstd")]
mod zstd;

#[cfg(feature = "gzip")]
pub use gzip::Gzip;
#[cfg(feature = "lz4")]
pub use lz4::Lz4;
pub use none::None;
#[cfg(feature = "snappy")]
pub use snappy::Snappy;
#[cfg(feature = "zstd")]
pub use zstd::Zstd;

/// strait: the most a batch's records may inflate to. Decompression reads the whole batch into
/// memory, and gzip (about 1,000:1), lz4 (255:1) and zstd (far more) let a batch of a few
/// kilobytes claim gigabytes, which would abort the process; one over this is refused as
/// undecodable instead. Above what strait's produce validation lets a batch inflate to
/// (64 MiB, or 8 times the largest record: 80 MiB for Kinesis's 10 MiB records), so every
/// batch strait accepted stays readable; the limit bites on batches written around strait
/// (straight to the Kafka cluster of the Kafka backend).
pub const MAX_INFLATED_BATCH: usize = 128 << 20;

/// strait: a decompression target that refuses to grow past [`MAX_INFLATED_BATCH`].
#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
pub(crate) struct Inflated(pub bytes::BytesMut);

#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
impl std::io::Write for Inflated {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + data.len() > MAX_INFLATED_BATCH {
            return Err(std::io::Error::other(format!(
                "the batch inflates past {MAX_INFLATED_BATCH} bytes"
            )));
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A trait for record compression algorithms.
pub trait Compressor<B: ByteBufMut> {
    /// Target buffer type for compression.
    type BufMut: ByteBufMut;
    /// Compresses into provided [`ByteBufMut`], with records encoded by `F` into `R`.
    fn compress<R, F>(buf: &mut B, f: F) -> Result<R>
    where
        F: FnOnce(&mut Self::BufMut) -> Result<R>;
}

/// A trait for record decompression algorithms.
pub trait Decompressor<B: ByteBuf> {
    /// Target buffer type for decompression.
    type Buf: ByteBuf;
    /// Decompress records from `B` mapped using `F` into `R`.
    fn decompress<R, F>(buf: &mut B, f: F) -> Result<R>
    where
        F: FnOnce(&mut Self::Buf) -> Result<R>;
}
