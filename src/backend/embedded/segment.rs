//! One segment file of a partition log: batches appended back to back, a sparse in-memory
//! index of (offset, position, running max timestamp), and the start-up scan that verifies
//! every batch's CRC and finds a torn tail.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::files::{FilePool, SegmentFile};

use crate::protocol::kafka::record_batch::{self, BatchError, BatchHeader};

/// One index entry per this many bytes of log.
const INDEX_INTERVAL: u64 = 4096;
const SCAN_CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
pub struct IndexEntry {
    pub offset: i64,
    pub pos: u64,
    /// The largest record timestamp at or before this batch: monotonic, so searchable.
    pub max_ts_so_far: i64,
}

pub struct Segment {
    pub base_offset: i64,
    pub path: PathBuf,
    /// Opened on use: idle segments hold no descriptor (`files.rs`).
    pub file: SegmentFile,
    pub size: u64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub index: Vec<IndexEntry>,
    bytes_since_index: u64,
}

pub fn segment_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

impl Segment {
    pub fn create(files: &Arc<FilePool>, dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let path = segment_path(dir, base_offset);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        Ok(Segment {
            base_offset,
            file: files.adopt(&path, file),
            path,
            size: 0,
            next_offset: base_offset,
            max_timestamp: i64::MIN,
            index: Vec::new(),
            bytes_since_index: INDEX_INTERVAL,
        })
    }

    /// Opens an existing segment, verifying every batch and showing each header to
    /// `on_batch`. Returns the segment and whether a torn or corrupt tail was cut off.
    pub fn recover(
        files: &Arc<FilePool>,
        path: &Path,
        base_offset: i64,
        on_batch: &mut impl FnMut(&BatchHeader),
    ) -> io::Result<(Segment, bool)> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let file = files.adopt(path, file);
        let f = file.get()?;
        let mut seg = Segment {
            base_offset,
            path: path.to_path_buf(),
            file,
            size: 0,
            next_offset: base_offset,
            max_timestamp: i64::MIN,
            index: Vec::new(),
            bytes_since_index: INDEX_INTERVAL,
        };
        let mut pos = 0u64;
        let mut chunk = BytesMut::new();
        let mut torn = false;
        'scan: while pos < len {
            chunk.clear();
            let want = ((len - pos) as usize).min(SCAN_CHUNK);
            chunk.resize(want, 0);
            f.read_exact_at(&mut chunk, pos)?;
            let mut at = 0usize;
            loop {
                match record_batch::check_batch(&chunk[at..]) {
                    Ok(h) if h.base_offset == seg.next_offset => {
                        seg.note_batch(&h, pos + at as u64);
                        on_batch(&h);
                        at += h.total_len;
                    }
                    Err(BatchError::Incomplete) if at > 0 => break,
                    Err(BatchError::Incomplete) if (pos + at as u64) < len => {
                        // A batch larger than the chunk: read it whole.
                        let h = match record_batch::parse_header(&chunk[at..]) {
                            Ok(h) if pos + (h.total_len as u64) <= len => h,
                            _ => {
                                torn = true;
                                break 'scan;
                            }
                        };
                        let mut whole = vec![0u8; h.total_len];
                        f.read_exact_at(&mut whole, pos)?;
                        match record_batch::check_batch(&whole) {
                            Ok(h) if h.base_offset == seg.next_offset => {
                                seg.note_batch(&h, pos);
                                on_batch(&h);
                                pos += h.total_len as u64;
                                continue 'scan;
                            }
                            _ => {
                                torn = true;
                                break 'scan;
                            }
                        }
                    }
                    _ => {
                        torn = true;
                        break 'scan;
                    }
                }
                if at >= chunk.len() {
                    break;
                }
            }
            pos += at as u64;
        }
        if seg.size < len {
            torn = true;
            f.set_len(seg.size)?;
            f.sync_all()?;
        }
        Ok((seg, torn))
    }

    /// Records an appended (or recovered) batch at `pos`.
    pub fn note_batch(&mut self, h: &BatchHeader, pos: u64) {
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        if self.bytes_since_index >= INDEX_INTERVAL {
            self.index.push(IndexEntry {
                offset: h.base_offset,
                pos,
                max_ts_so_far: self.max_timestamp,
            });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.total_len as u64;
        self.size = pos + h.total_len as u64;
        self.next_offset = h.next_offset();
    }

    /// The byte position to start scanning from for `offset`.
    pub fn position_for_offset(&self, offset: i64) -> u64 {
        let i = self.index.partition_point(|e| e.offset <= offset);
        if i == 0 {
            0
        } else {
            self.index[i - 1].pos
        }
    }

    /// The byte position to start scanning from for the first record at or after `ts`.
    pub fn position_for_timestamp(&self, ts: i64) -> u64 {
        let i = self.index.partition_point(|e| e.max_ts_so_far < ts);
        if i == 0 {
            0
        } else {
            self.index[i - 1].pos
        }
    }
}

/// Reads whole batches from `file` between `from` and `to`, at most about `max_bytes`
/// (always the first whole batch), skipping batches that end before `offset` and stopping at
/// `visible_end`.
pub fn read_batches(
    file: &File,
    from: u64,
    to: u64,
    offset: i64,
    visible_end: i64,
    max_bytes: usize,
) -> io::Result<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut pos = from;
    let mut taken = 0usize;
    while pos < to && taken < max_bytes {
        let want = ((to - pos) as usize).min((max_bytes - taken).max(64 * 1024));
        let mut chunk = BytesMut::zeroed(want);
        file.read_exact_at(&mut chunk, pos)?;
        let chunk = chunk.freeze();
        let mut at = 0usize;
        while at < chunk.len() {
            let Ok(h) = record_batch::parse_header(&chunk[at..]) else {
                break;
            };
            if h.base_offset >= visible_end {
                return Ok(out);
            }
            let wanted = h.last_offset() >= offset;
            if wanted && taken > 0 && taken + h.total_len > max_bytes {
                return Ok(out);
            }
            if at + h.total_len > chunk.len() {
                if at == 0 {
                    // One batch larger than the chunk: read it whole.
                    if wanted {
                        let mut whole = BytesMut::zeroed(h.total_len);
                        file.read_exact_at(&mut whole, pos)?;
                        out.push(whole.freeze());
                        taken += h.total_len;
                    }
                    at = h.total_len;
                }
                break;
            }
            if wanted {
                out.push(chunk.slice(at..at + h.total_len));
                taken += h.total_len;
            }
            at += h.total_len;
        }
        if at == 0 {
            break;
        }
        pos += at as u64;
    }
    Ok(out)
}
