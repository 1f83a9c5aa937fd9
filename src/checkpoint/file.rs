//! Checkpoint files: written atomically (a temporary file renamed over the target), refused when
//! a value is not finite, read back with the file named in every error.

use super::{Checkpoint, StoredDtype};
use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over the target. A crash leaves either the old file or the new one; a failed
/// write or rename removes its temporary file, and temporary files of the same target left by
/// processes that no longer run (a crash, a kill) are removed first. A symbolic link is
/// followed (the file it points to is replaced, the link stays); a target that is not a regular
/// file (a device such as `/dev/stdout`, a pipe) is written in place, never replaced; a folder
/// is refused.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let path = match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a folder; give a file name",
            )));
        }
        Ok(meta) if !meta.is_file() => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io)?;
            return file.write_all(bytes).and_then(|_| file.flush()).map_err(io);
        }
        Ok(_) => std::fs::canonicalize(path).map_err(io)?,
        Err(_) => path.to_path_buf(),
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint");
    let prefix = format!(".{name}.tmp-");
    remove_stale_temporaries(dir, &prefix);
    // Unique per process and write: threads of one process (contexts sharing a tune cache) may
    // write the same target at once.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{prefix}{}-{n}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// Removes `dir/PREFIX<pid>-<n>` files whose process is gone (Linux: no `/proc/<pid>`; elsewhere
/// only those older than a day).
fn remove_stale_temporaries(dir: &std::path::Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let gone = if cfg!(target_os = "linux") {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 86_400)
        };
        if gone {
            log::info!("removing a stale temporary file {}", entry.path().display());
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Saves a checkpoint to `path` atomically. A checkpoint with a non-finite weight, running
/// statistic or momentum value (a diverged run) is refused, so it never replaces a good one.
pub fn save(path: &std::path::Path, checkpoint: &Checkpoint) -> Result<()> {
    save_as(path, checkpoint, StoredDtype::F32)
}

/// [`save`] with float tensors stored as `dtype`.
pub fn save_as(path: &std::path::Path, checkpoint: &Checkpoint, dtype: StoredDtype) -> Result<()> {
    if let Some((name, index, value)) = checkpoint.first_non_finite() {
        return Err(Error::Diverged {
            step: checkpoint.step(),
            what: format!(
                "{name}[{index}] is {value}, so {} was not written",
                path.display()
            ),
        });
    }
    write_atomic(path, &checkpoint.to_bytes_as(dtype)?)
}

/// Loads a checkpoint (hetconv's or a PyTorch export) from `path`.
pub fn load(path: &std::path::Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Checkpoint::from_bytes(&bytes, &path.display().to_string())
}
