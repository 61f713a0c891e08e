//! The space left on the file system holding `data_dir`, read on scrape, so an alert can fire
//! before the embedded log (or the Kinesis backend's offset index) cannot write.

use std::path::PathBuf;

/// (bytes available to strait, file system size) of the file system holding `path`.
fn space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `s` a properly sized, writable statvfs that
    // the call fills in; it is read only when the call succeeds.
    let rc = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised `s`.
    let s = unsafe { s.assume_init() };
    let block = s.f_frsize;
    Some((s.f_bavail * block, s.f_blocks * block))
}

/// Sets `strait_data_dir_available_bytes` and `strait_data_dir_capacity_bytes` before each
/// scrape from now on.
pub fn watch_data_dir(path: PathBuf) {
    let m = super::metrics();
    m.on_scrape(Box::new(move || {
        if let Some((available, capacity)) = space(&path) {
            let m = super::metrics();
            m.data_dir_available_bytes
                .set(i64::try_from(available).unwrap_or(i64::MAX));
            m.data_dir_capacity_bytes
                .set(i64::try_from(capacity).unwrap_or(i64::MAX));
        }
        Box::pin(async {})
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_space_of_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (available, capacity) = super::space(dir.path()).unwrap();
        assert!(
            capacity > 0 && available <= capacity,
            "{available} of {capacity}"
        );
        assert_eq!(super::space(&dir.path().join("missing")), None);
    }
}
