//! The folder a new training run writes to: never silently over a previous run's files.

use std::path::{Path, PathBuf};

use hetconv::{Error, Result};

/// What a run leaves in its folder.
const RUN_FILES: [&str; 4] = [
    "checkpoint.safetensors",
    "steps.csv",
    "epochs.jsonl",
    "curves.png",
];

/// Makes room for a new run that writes its metrics to `out` and its checkpoint to `save`,
/// unless `overwrite`: a previous run in `out` is moved, whole, to the first free sibling
/// `OUT.N` (returned), so that `out` always holds the newest run and no older one is lost; a
/// checkpoint named with `--save` outside `out` that exists already is refused, naming it.
pub fn make_room(out: &Path, save: &Path, overwrite: bool) -> Result<Option<PathBuf>> {
    if overwrite {
        return Ok(None);
    }
    // Inside `out` (compared as the file system resolves both): moved with the folder.
    let inside = match (
        save.parent().map(std::fs::canonicalize),
        std::fs::canonicalize(out),
    ) {
        (Some(Ok(folder)), Ok(out)) => folder.starts_with(out),
        _ => false,
    };
    if !inside && save.exists() {
        return Err(Error::InvalidArgument(format!(
            "--save {} exists already: name another file, or give --overwrite to replace it",
            save.display()
        )));
    }
    if !RUN_FILES.iter().any(|name| out.join(name).exists()) {
        return Ok(None);
    }
    let name = out.file_name().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "--out {} holds a previous run, and a folder without a name cannot be moved aside: name another --out, or give --overwrite to replace it",
            out.display()
        ))
    })?;
    let Some(moved) = (1u64..)
        .map(|n| {
            let mut sibling = name.to_os_string();
            sibling.push(format!(".{n}"));
            out.with_file_name(sibling)
        })
        .find(|path| !path.exists())
    else {
        unreachable!("fewer than u64::MAX siblings exist")
    };
    std::fs::rename(out, &moved).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(Some(moved))
}

/// The folder a resumed run writes its metrics to, when no `--out` is given: the checkpoint's
/// own folder where that is a run's folder (it holds `steps.csv`: a run moved aside by a later
/// one continues where it now lives, never in the folder the later run holds), else the folder
/// the run recorded (a checkpoint saved elsewhere with `--save`).
pub fn of_resumed(checkpoint: &Path, recorded: &Path) -> PathBuf {
    match checkpoint.parent() {
        Some(folder) if folder.join("steps.csv").is_file() => {
            if folder.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                folder.to_path_buf()
            }
        }
        _ => recorded.to_path_buf(),
    }
}
