//! The segment files the embedded log holds open, at most `backend.embedded.max_open_files`
//! across every partition: a segment's file is opened when first used and closed once it is
//! the least recently used past the cap, so idle partitions and old segments hold no
//! descriptor. A read, write or fsync under way keeps its file (an `Arc`) even once evicted.
//! fsync works on the file, not the descriptor, so data written through a descriptor closed
//! since is still covered by an fsync through the next one. One weaker spot: Linux reports a
//! writeback error nobody has seen to a descriptor opened later only while the file's inode
//! stays cached, so an error in that gap could go unreported; keep `max_open_files` above the
//! partitions written at once and it does not arise.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

pub struct FilePool {
    max: usize,
    open: Mutex<Lru>,
    next_id: AtomicU64,
}

/// Open files by segment id, and the ids by when each was last used.
#[derive(Default)]
struct Lru {
    files: HashMap<u64, (Arc<File>, u64)>,
    by_use: BTreeMap<u64, u64>,
    clock: u64,
}

impl Lru {
    fn touch(&mut self, id: u64) -> Option<Arc<File>> {
        self.clock += 1;
        let clock = self.clock;
        let (file, used) = self.files.get_mut(&id)?;
        self.by_use.remove(used);
        *used = clock;
        self.by_use.insert(clock, id);
        Some(file.clone())
    }

    /// Holds `file` as `id`'s, closing the least recently used past `max`.
    fn insert(&mut self, id: u64, file: Arc<File>, max: usize) {
        self.clock += 1;
        if let Some((_, used)) = self.files.insert(id, (file, self.clock)) {
            self.by_use.remove(&used);
        }
        self.by_use.insert(self.clock, id);
        while self.files.len() > max {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.files.remove(&oldest);
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some((_, used)) = self.files.remove(&id) {
            self.by_use.remove(&used);
        }
    }
}

impl FilePool {
    pub fn new(max_open_files: usize) -> Arc<FilePool> {
        Arc::new(FilePool {
            max: max_open_files.max(1),
            open: Mutex::new(Lru::default()),
            next_id: AtomicU64::new(0),
        })
    }

    /// Files held open now (evicted ones still in use not counted).
    pub fn open_files(&self) -> u64 {
        self.open.lock().files.len() as u64
    }

    /// Takes `file`, just opened for `path`, as that segment's.
    pub fn adopt(self: &Arc<Self>, path: &Path, file: File) -> SegmentFile {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(id, Arc::new(file), self.max);
        SegmentFile {
            id,
            path: path.to_path_buf(),
            pool: Arc::clone(self),
        }
    }
}

/// One segment's file, open or not.
pub struct SegmentFile {
    id: u64,
    path: PathBuf,
    pool: Arc<FilePool>,
}

impl SegmentFile {
    /// The open file, opening it again if it was closed.
    pub fn get(&self) -> io::Result<Arc<File>> {
        if let Some(f) = self.pool.open.lock().touch(self.id) {
            return Ok(f);
        }
        // Opened outside the lock: another segment's user need not wait for this one.
        let f = Arc::new(OpenOptions::new().read(true).write(true).open(&self.path)?);
        self.pool
            .open
            .lock()
            .insert(self.id, f.clone(), self.pool.max);
        Ok(f)
    }
}

impl Drop for SegmentFile {
    /// The segment is gone (deleted by retention, or its topic): so is its descriptor.
    fn drop(&mut self) {
        self.pool.open.lock().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptors_on(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    #[test]
    fn past_the_cap_files_are_closed_and_reopened_when_used() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::new(4);
        let files: Vec<SegmentFile> = (0..20)
            .map(|i| {
                let path = dir.path().join(format!("{i}.log"));
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(&path)
                    .unwrap();
                pool.adopt(&path, f)
            })
            .collect();
        assert!(pool.open_files() <= 4, "{} open", pool.open_files());
        assert!(descriptors_on(dir.path()) <= 4);
        use std::os::unix::fs::FileExt;
        for (i, f) in files.iter().enumerate() {
            f.get().unwrap().write_all_at(&[i as u8], 0).unwrap();
        }
        for (i, f) in files.iter().enumerate() {
            let mut b = [0u8];
            f.get().unwrap().read_exact_at(&mut b, 0).unwrap();
            assert_eq!(b[0], i as u8);
        }
        assert!(descriptors_on(dir.path()) <= 4);
        drop(files);
        assert_eq!(pool.open_files(), 0);
        assert_eq!(descriptors_on(dir.path()), 0);
    }
}
