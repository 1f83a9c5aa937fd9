//! The tune cache: one JSON file per adapter, driver and hetconv version, holding the winning
//! variant of each key and its time. Written to a temporary file and renamed. A file that does
//! not parse, or that belongs to another adapter, driver, version, set of limits or WGSL
//! source of the kernels, is ignored with a warning.
//! A save replaces a tune cache of any version, adapter or driver, an empty file, and anything
//! in the platform cache folder's own file; a file named by the caller that is not a tune cache
//! (a checkpoint given to `--tune-cache` by mistake) is never overwritten: the save fails,
//! naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Variant;
use crate::error::{Error, Result};

/// The file format's name and version.
const FORMAT: &str = "hetconv-tune-1";

/// What a cache file belongs to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// hetconv's version.
    pub hetconv: String,
    /// Adapter name.
    pub adapter: String,
    /// Backend (Vulkan, Metal, ...).
    pub backend: String,
    /// Driver name.
    pub driver: String,
    /// Driver version text.
    pub driver_info: String,
    /// The device's workgroup memory and invocations per workgroup: they decide which tile
    /// shapes are candidates, so the WebGPU default limits and `--max-limits` keep separate
    /// files.
    pub workgroup_storage: u32,
    /// See `workgroup_storage`.
    pub invocations: u32,
    /// A fingerprint of the kernels' WGSL sources (see [`kernels_fingerprint`]): times taken
    /// with other shader sources (another build of the same version) are not this build's. A
    /// file without it (written before it existed) reads as another build's. It covers the WGSL
    /// text only: a change to the override constants the host picks (a tile's padding, its
    /// fragment blocks) keeps old times trusted until the version changes. Left out of the
    /// JSON when empty, so that the file name (a hash of the rest) is the one it was before the
    /// field existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernels: String,
}

/// FNV-1a of `bytes`: stable across builds and platforms (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The fingerprint of this build's kernels: FNV-1a over every shader module's name and WGSL
/// text ([`crate::shaders::ALL`]), as 16 hex digits.
pub fn kernels_fingerprint() -> String {
    let mut text = Vec::new();
    for shader in crate::shaders::ALL {
        text.extend_from_slice(shader.name.as_bytes());
        text.push(0);
        text.extend_from_slice(shader.source.as_bytes());
        text.push(0);
    }
    format!("{:016x}", fnv1a(&text))
}

impl Identity {
    /// The identity of the running adapter, opened with `limits`.
    pub fn of(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> Self {
        Self {
            hetconv: env!("CARGO_PKG_VERSION").to_string(),
            adapter: info.name.clone(),
            backend: format!("{:?}", info.backend),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            workgroup_storage: limits.max_compute_workgroup_storage_size,
            invocations: limits.max_compute_invocations_per_workgroup,
            kernels: kernels_fingerprint(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{:?} ({}, driver {} {}, {} B workgroup memory, {} invocations, hetconv {}, kernels {})",
            self.adapter,
            self.backend,
            self.driver,
            self.driver_info,
            self.workgroup_storage,
            self.invocations,
            self.hetconv,
            if self.kernels.is_empty() {
                "unknown"
            } else {
                &self.kernels
            }
        )
    }

    /// A file name that tells adapters apart: the adapter's name in plain characters and a
    /// hash of the identity but the kernels' fingerprint.
    #[cfg(not(target_arch = "wasm32"))]
    fn file_name(&self) -> String {
        let name: String = self
            .adapter
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let name = name
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        // Not the kernels' fingerprint: a build with other kernels replaces the file instead
        // of leaving one more behind.
        let text = serde_json::to_string(&Self {
            kernels: String::new(),
            ..self.clone()
        })
        .unwrap_or_default();
        format!("tune-{name}-{:016x}.json", fnv1a(text.as_bytes()))
    }
}

/// The default cache file: `hetconv/` in the platform's cache folder (`$XDG_CACHE_HOME` or
/// `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows), or
/// `HETCONV_TUNE_CACHE` when set. None on wasm.
pub fn default_path(identity: &Identity) -> Option<PathBuf> {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(path) = std::env::var_os("HETCONV_TUNE_CACHE") {
        return Some(PathBuf::from(path));
    }
    platform_path(identity)
}

/// The cache file in the platform's cache folder (hetconv's own: replaced whatever it holds).
fn platform_path(identity: &Identity) -> Option<PathBuf> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        dirs::cache_dir().map(|d| d.join("hetconv").join(identity.file_name()))
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = identity;
        None
    }
}

/// Whether a save may replace the file at `path`: it does not exist, is empty (made by
/// `touch` or `mktemp`), or is a tune cache of any version, adapter or driver.
fn holds_no_other_file(path: &Path) -> bool {
    match std::fs::read(path) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(bytes) if bytes.is_empty() => true,
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|file| Some(file.get("format")?.as_str()?.starts_with("hetconv-tune-")))
            .unwrap_or(false),
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Entry {
    variant: String,
    ms: Option<f64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct File {
    format: String,
    identity: Identity,
    entries: BTreeMap<String, Entry>,
}

/// A cache in memory, with the file it came from and goes to.
#[derive(Debug)]
pub struct TuneCache {
    identity: Identity,
    path: Option<PathBuf>,
    entries: BTreeMap<String, Entry>,
    /// Whether a save may replace the file (see the module doc).
    replaceable: bool,
    /// Whether a failed save was reported already (`save_or_warn`).
    save_failure_reported: bool,
}

impl TuneCache {
    /// Reads `path` if it exists; a missing file is an empty cache, a bad or foreign one is
    /// ignored with a warning (and kept at a save if it is not a tune cache and not the
    /// platform folder's file).
    pub fn load(identity: Identity, path: Option<PathBuf>) -> Self {
        let mut cache = Self {
            identity,
            path,
            entries: BTreeMap::new(),
            replaceable: true,
            save_failure_reported: false,
        };
        if let Some(path) = &cache.path {
            match read(path, &cache.identity) {
                Ok(entries) => cache.entries = entries,
                Err(e) => {
                    cache.replaceable = platform_path(&cache.identity).as_ref() == Some(path)
                        || holds_no_other_file(path);
                    let kept = if cache.replaceable {
                        ""
                    } else {
                        " (not a tune cache: it will not be overwritten)"
                    };
                    log::warn!("tune cache ignored: {e}{kept}");
                }
            }
        }
        cache
    }

    /// Whether a save may replace the file (see the module doc).
    pub fn replaceable(&self) -> bool {
        self.replaceable
    }

    /// The file this cache reads and writes.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The stored choice for `key`, if any and if it names a variant.
    pub fn get(&self, key: &str) -> Option<(Variant, Option<f64>)> {
        let entry = self.entries.get(key)?;
        match entry.variant.parse() {
            Ok(v) => Some((v, entry.ms)),
            Err(e) => {
                log::warn!("tune cache: {key}: {e}");
                None
            }
        }
    }

    /// Stores the choice for `key`.
    pub fn insert(&mut self, key: &str, variant: Variant, ms: f64) {
        self.entries.insert(
            key.to_string(),
            Entry {
                variant: variant.to_string(),
                ms: Some(ms),
            },
        );
    }

    /// Saves (`save`); the first failure is a warning that says the choices stay in memory
    /// only, later ones are logged at debug level, so that a run tuning many keys warns once.
    pub fn save_or_warn(&mut self) {
        if let Err(e) = self.save() {
            if self.save_failure_reported {
                log::debug!("tune cache: {e}");
            } else {
                self.save_failure_reported = true;
                log::warn!(
                    "tune cache: {e}; this run keeps its tuned choices in memory but cannot store them (warned once)"
                );
            }
        }
    }

    /// Writes the file ([`crate::checkpoint::write_atomic`]: a temporary file in the same
    /// folder, then a rename). The keys another process stored in the file since this cache
    /// read it (a `hetconv tune` beside a training run, ranks on one host) are taken in first
    /// and kept (this cache's own choices win where both have a key). Nothing to do without a
    /// path; an error for a file that is not to be replaced (see the module doc).
    pub fn save(&mut self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.replaceable {
            return Err(Error::InvalidArgument(format!(
                "{}: not a tune cache, so not overwritten: remove it or name another file for the cache",
                path.display()
            )));
        }
        if let Ok(theirs) = read(path, &self.identity) {
            for (key, entry) in theirs {
                self.entries.entry(key).or_insert(entry);
            }
        }
        let file = File {
            format: FORMAT.to_string(),
            identity: self.identity.clone(),
            entries: self.entries.clone(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| Error::Decode {
            path: path.clone(),
            what: "cannot write the tune cache as JSON",
            source: Box::new(e),
        })?;
        #[cfg(not(target_arch = "wasm32"))]
        {
            crate::checkpoint::write_atomic(path, text.as_bytes())
        }
        #[cfg(target_arch = "wasm32")]
        {
            // No file system in a browser: the error says so.
            std::fs::write(path, text).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })
        }
    }
}

fn read(path: &Path, identity: &Identity) -> Result<BTreeMap<String, Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let format_error = |offset: u64, message: String| Error::Format {
        path: path.to_path_buf(),
        offset,
        message,
    };
    let file: File = serde_json::from_str(&text).map_err(|e| {
        // serde_json reports line and column; turn them into a byte offset.
        let offset: usize = text
            .split_inclusive('\n')
            .take(e.line().saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
            + e.column().saturating_sub(1);
        format_error(offset as u64, format!("not a tune cache: {e}"))
    })?;
    if file.format != FORMAT {
        return Err(format_error(
            0,
            format!("format {:?}, expected {FORMAT:?}", file.format),
        ));
    }
    if &file.identity != identity {
        return Err(format_error(
            0,
            format!(
                "written for {}, this is {}",
                file.identity.describe(),
                identity.describe()
            ),
        ));
    }
    Ok(file.entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            hetconv: env!("CARGO_PKG_VERSION").to_string(),
            adapter: "test adapter".into(),
            backend: "Vulkan".into(),
            driver: "test".into(),
            driver_info: "1".into(),
            workgroup_storage: 16384,
            invocations: 256,
            kernels: kernels_fingerprint(),
        }
    }

    /// Times taken with other kernels are ignored: a file of another build of the kernels, or
    /// of one from before the fingerprint, has no entries for this one, and this build's save
    /// replaces it.
    #[test]
    fn a_cache_of_other_kernels_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tune.json");
        for other in ["0123456789abcdef", ""] {
            let theirs = Identity {
                kernels: other.into(),
                ..identity()
            };
            let mut old = TuneCache::load(theirs.clone(), Some(path.clone()));
            old.insert("conv a", Variant::Direct, 1.0);
            old.save().unwrap();
            if other.is_empty() {
                // As a file from before the field: no "kernels" at all.
                let mut file: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                file["identity"].as_object_mut().unwrap().remove("kernels");
                std::fs::write(&path, file.to_string()).unwrap();
                assert_eq!(read(&path, &theirs).unwrap().len(), 1);
            }
            let mut ours = TuneCache::load(identity(), Some(path.clone()));
            assert_eq!(ours.get("conv a"), None, "kernels {other:?}");
            assert!(ours.replaceable());
            ours.insert("conv b", Variant::Direct, 2.0);
            ours.save().unwrap();
            let stored = TuneCache::load(identity(), Some(path.clone()));
            assert_eq!(stored.get("conv b"), Some((Variant::Direct, Some(2.0))));
            assert_eq!(stored.get("conv a"), None);
        }
        // The platform folder's file is the same one, so that it is replaced, not joined, and
        // the one from before the fingerprint: its name hashed JSON without "kernels".
        let text = serde_json::to_string(&Identity {
            kernels: String::new(),
            ..identity()
        })
        .unwrap();
        assert!(!text.contains("kernels"), "{text}");
        let other = Identity {
            kernels: "0123456789abcdef".into(),
            ..identity()
        };
        assert_eq!(other.file_name(), identity().file_name());
        let other = Identity {
            driver_info: "2".into(),
            ..identity()
        };
        assert_ne!(other.file_name(), identity().file_name());
        // The fingerprint follows the sources: 16 hex digits, the same on every call.
        let fingerprint = kernels_fingerprint();
        assert_eq!(fingerprint.len(), 16);
        assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(fingerprint, kernels_fingerprint());
    }

    /// Two processes tuning into one file (each read it before the other saved): every key
    /// either stored survives, and a key both stored keeps the saver's own choice.
    #[test]
    fn concurrent_savers_keep_each_others_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tune.json");
        let mut first = TuneCache::load(identity(), Some(path.clone()));
        let mut second = TuneCache::load(identity(), Some(path.clone()));
        first.insert("conv a", Variant::Direct, 1.0);
        first.insert("shared", Variant::Direct, 2.0);
        first.save().unwrap();
        let tile = crate::kernels::gemm_core::TileShape::new(64, 64, 4, 4, 16);
        second.insert("conv b", Variant::gemm(tile), 3.0);
        second.insert("shared", Variant::gemm(tile), 4.0);
        second.save().unwrap();
        let stored = TuneCache::load(identity(), Some(path));
        assert_eq!(stored.get("conv a"), Some((Variant::Direct, Some(1.0))));
        assert_eq!(stored.get("conv b"), Some((Variant::gemm(tile), Some(3.0))));
        assert_eq!(stored.get("shared"), Some((Variant::gemm(tile), Some(4.0))));
    }
}
