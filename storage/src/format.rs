//! The data directory's format version. `<data dir>/FORMAT` holds one line, `raftmq-data <n>`.
//! A build reads exactly the format it writes: a directory of any other format is refused with
//! what to do, never opened and misread. Formats: 1, every Raft log inside RocksDB (directories
//! made before the file existed are format 1 too); 2, Raft logs in the segment log
//! (`commitlog/`) and state-machine data in RocksDB.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::Result;
use crate::error::StorageError;

/// The format this build reads and writes: 2, Raft logs in the segment log.
pub const CURRENT: u32 = 2;

/// The file's name in the data directory.
pub const FILE: &str = "FORMAT";

const PREFIX: &str = "raftmq-data ";

/// The format recorded in `dir`, if any. An unreadable or foreign `FORMAT` file is an error.
pub fn read(dir: &Path) -> Result<Option<u32>> {
    let path = dir.join(FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    text.trim().strip_prefix(PREFIX).and_then(|n| n.parse::<u32>().ok()).map(Some).ok_or_else(|| {
        format_error(dir, format!("{} does not say `{PREFIX}<n>`: {:?}", path.display(), text.trim()))
    })
}

/// Checks that `dir` holds data of [`CURRENT`] format, recording it (durably: temporary file,
/// fsync, rename, directory fsync) when the directory is new. A directory with a RocksDB but no
/// `FORMAT` file was made before the file existed: format 1.
pub fn check_or_record(dir: &Path) -> Result<()> {
    let found = match read(dir)? {
        None if dir.join("rocksdb").join("CURRENT").exists() => Some(1),
        f => f,
    };
    match found {
        Some(CURRENT) => Ok(()),
        Some(other) => Err(format_error(
            dir,
            format!(
                "it holds data format {other}; this build reads format {CURRENT}. Run a raftmq \
                 build that reads format {other}, or empty the directory and bring the node back \
                 under a new id (`raftmq admin node replace`)"
            ),
        )),
        None => record(dir),
    }
}

fn record(dir: &Path) -> Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    writeln!(f, "{PREFIX}{CURRENT}")?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(FILE))?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn format_error(dir: &Path, reason: String) -> StorageError {
    StorageError::Format { dir: dir.display().to_string(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_is_recorded_and_then_accepted() {
        let dir = tempfile::tempdir().unwrap();
        check_or_record(dir.path()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(CURRENT));
        assert_eq!(fs::read_to_string(dir.path().join(FILE)).unwrap(), "raftmq-data 2\n");
        check_or_record(dir.path()).unwrap();
    }

    #[test]
    fn another_format_is_refused_with_what_to_do_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "raftmq-data 1\n").unwrap();
        let e = check_or_record(dir.path()).unwrap_err().to_string();
        assert!(e.contains("format 1") && e.contains("reads format 2") && e.contains("node replace"), "{e}");
        assert_eq!(fs::read_to_string(dir.path().join(FILE)).unwrap(), "raftmq-data 1\n");
    }

    #[test]
    fn a_directory_from_before_the_file_is_format_1_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("rocksdb")).unwrap();
        fs::write(dir.path().join("rocksdb").join("CURRENT"), "MANIFEST-000001\n").unwrap();
        let e = check_or_record(dir.path()).unwrap_err().to_string();
        assert!(e.contains("format 1") && e.contains("reads format 2"), "{e}");
        assert!(!dir.path().join(FILE).exists(), "nothing may be written into a refused directory");
    }

    #[test]
    fn a_foreign_format_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "hello").unwrap();
        let e = check_or_record(dir.path()).unwrap_err().to_string();
        assert!(e.contains("does not say"), "{e}");
    }
}
