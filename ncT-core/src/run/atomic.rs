//! Atomic file replacement: write a temporary file in the same directory, fsync it, rename it over
//! the target, fsync the directory. A crash or error at any point leaves the old file intact.

use super::{RunError, io_err};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Where to inject a failure (tests of atomicity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailPoint {
    None,
    /// Fail after writing this many bytes of the temporary file.
    AfterBytes(usize),
    /// Fail after the temporary file is complete, before the rename.
    BeforeRename,
}

/// Replace `path` by `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    write_atomic_with(path, bytes, FailPoint::None)
}

/// [`write_atomic`] with an injected failure.
pub fn write_atomic_with(path: &Path, bytes: &[u8], fail: FailPoint) -> Result<(), RunError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let injected = |what: &str| RunError::Io { path: tmp.clone(), source: std::io::Error::other(format!("injected failure {what}")) };
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io_err(&tmp))?;
        if let FailPoint::AfterBytes(n) = fail {
            f.write_all(&bytes[..n.min(bytes.len())]).map_err(io_err(&tmp))?;
            return Err(injected("while writing"));
        }
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    if fail == FailPoint::BeforeRename {
        return Err(injected("before rename"));
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
