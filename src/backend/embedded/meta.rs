//! Metadata documents as files under `<data_dir>/meta`, each replaced atomically
//! (write, fsync, rename, fsync the directory), so a crash leaves the old or the new version.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use parking_lot::Mutex;

use super::partition::sync_dir;
use crate::backend::StorageResult;
use crate::backend::SyncMetaStore;

pub struct FileMetaStore {
    dir: PathBuf,
    write_lock: Mutex<()>,
}

impl FileMetaStore {
    pub fn open(dir: PathBuf) -> std::io::Result<FileMetaStore> {
        fs::create_dir_all(&dir)?;
        // Leftovers of writes interrupted before their rename. Keys always have a
        // `kind/` prefix, so no document's file name starts with a dot.
        for e in fs::read_dir(&dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(FileMetaStore {
            dir,
            write_lock: Mutex::new(()),
        })
    }

    /// Keys may hold `/`; file names use `@` instead, which no key component contains.
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key.replace('/', "@"))
    }
}

impl SyncMetaStore for FileMetaStore {
    fn get(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        match fs::read(self.path(key)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn put(&self, key: &str, value: &[u8]) -> StorageResult<()> {
        let _guard = self.write_lock.lock();
        let path = self.path(key);
        let tmp = self.dir.join(format!(".{}.tmp", key.replace('/', "@")));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(value)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    fn delete(&self, key: &str) -> StorageResult<()> {
        let _guard = self.write_lock.lock();
        match fs::remove_file(self.path(key)) {
            Ok(()) => sync_dir(&self.dir).map_err(Into::into),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn list(&self, prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)?.flatten() {
            let name = e.file_name().to_string_lossy().replace('@', "/");
            if name.starts_with(prefix) && !name.starts_with('.') {
                out.push((name, fs::read(e.path())?));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let m = FileMetaStore::open(dir.path().join("meta")).unwrap();
        m.put("streams/a", b"1").unwrap();
        m.put("streams/b", b"2").unwrap();
        m.put("secrets/x", b"3").unwrap();
        m.put("streams/a", b"11").unwrap();
        // Names that look like temporary files are ordinary keys.
        m.put("streams/x.tmp", b"4").unwrap();
        m.put("streams/.hidden", b"5").unwrap();
        assert_eq!(m.get("streams/a").unwrap().unwrap(), b"11");
        drop(m);
        let m = FileMetaStore::open(dir.path().join("meta")).unwrap();
        let l = m.list("streams/").unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(m.get("streams/x.tmp").unwrap().unwrap(), b"4");
        assert!(l.contains(&("streams/a".to_string(), b"11".to_vec())));
        assert!(l.contains(&("streams/.hidden".to_string(), b"5".to_vec())));
        m.delete("streams/a").unwrap();
        assert!(m.get("streams/a").unwrap().is_none());
    }
}
