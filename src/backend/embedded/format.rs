//! The data directory's format version: a file `FORMAT_VERSION` at its root holding one
//! integer. A directory without it is version 1 (what strait wrote before the stamp), and is
//! stamped. strait refuses a directory written by a newer, incompatible strait, naming both
//! versions, rather than misread it. Producer state is rebuilt from the log's batch headers,
//! so it is covered by the log's format.

use std::fs;
use std::io::Write;
use std::path::Path;

/// The format this strait writes and reads. Raise it when stored bytes change meaning, and
/// upgrade older directories in `check_and_stamp`.
pub const FORMAT_VERSION: u32 = 1;
const FILE: &str = "FORMAT_VERSION";

/// Reads (or writes) the stamp; an error says why the directory cannot be used.
pub fn check_and_stamp(data_dir: &Path) -> Result<u32, String> {
    let path = data_dir.join(FILE);
    let found = match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u32>().map_err(|_| {
            format!(
                "{} holds {:?}, not a format version number",
                path.display(),
                text.trim()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            stamp(data_dir).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            return Ok(FORMAT_VERSION);
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if found > FORMAT_VERSION {
        return Err(format!(
            "data_dir {} has data format version {found}, written by a newer strait; this strait \
             reads format version {FORMAT_VERSION} and older. Run the newer strait on it, or \
             point this one at a backup taken before the upgrade",
            data_dir.display()
        ));
    }
    Ok(found)
}

/// Writes the stamp atomically: a crash leaves either no file or a whole one.
fn stamp(data_dir: &Path) -> std::io::Result<()> {
    let tmp = data_dir.join(format!(".{FILE}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    writeln!(f, "{FORMAT_VERSION}")?;
    f.sync_all()?;
    fs::rename(&tmp, data_dir.join(FILE))?;
    fs::File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_is_stamped_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_and_stamp(dir.path()), Ok(FORMAT_VERSION));
        let text = fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text, format!("{FORMAT_VERSION}\n"));
        assert_eq!(check_and_stamp(dir.path()), Ok(FORMAT_VERSION));
    }

    #[test]
    fn a_newer_format_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "7\n").unwrap();
        let err = check_and_stamp(dir.path()).unwrap_err();
        assert!(
            err.contains("version 7") && err.contains(&format!("version {FORMAT_VERSION}")),
            "{err}"
        );
        fs::write(dir.path().join(FILE), "seven").unwrap();
        assert!(check_and_stamp(dir.path())
            .unwrap_err()
            .contains("\"seven\""));
    }
}
