//! Your own images: a folder with one sub-folder per class (PNG or JPEG, any size, grey or
//! colour; in the class folder or in folders below it), as torchvision's `ImageFolder` reads
//! it. Either `DIR/<class>/...` (every tenth image of each class, in path order, is held out as
//! the test split) or `DIR/train/<class>/...` with `DIR/val/<class>/...` (or another of
//! [`TEST_SPLITS`]). Classes are the sub-folders' names in sorted order; hidden files and
//! folders (a leading `.`) are ignored. Every image is resized (shorter side) and centre-cropped to
//! `size` x `size`; the set is grey (1 channel) when every image is, RGB otherwise. A folder
//! whose decoded images fit in [`FolderOptions::memory_limit`] is decoded once, on every core,
//! and kept as bytes; a larger one is streamed: only the file list is kept, the headers are read
//! up front (for the channels, and so that a file that is not an image fails now, not hours
//! into training), and each batch's images are decoded on every core when the batch is built
//! (by [`super::prefetch`]'s thread while the GPU trains). A file that is not a readable image
//! is an error naming it, or, with `skip_bad`, left out and reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::image_file::{centre_square, decode, planes, probe_grey};
use super::{Dataset, Images, Splits};
use crate::error::{Error, Result};

/// Every how many images of a class one goes to the test split of a folder without splits.
pub const HOLD_OUT_EVERY: usize = 10;

/// The names a test split's folder may have beside `train/`, in the order they are looked for.
pub const TEST_SPLITS: [&str; 4] = ["val", "test", "valid", "validation"];

/// Folder names that say "a split", not "a class": a folder whose class folders all have such
/// names is a split layout this reader does not know, refused rather than read as classes.
const SPLIT_LIKE: [&str; 7] = [
    "train",
    "training",
    "val",
    "valid",
    "validation",
    "test",
    "testing",
];

/// The largest side images are stored at.
pub const MAX_STORED_SIDE: usize = 4096;

/// The default [`FolderOptions::memory_limit`]: 4 GiB of decoded images.
pub const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;

/// How to read a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// Side of the stored square images.
    pub size: usize,
    /// Leave out files that are not readable images (and report them) instead of failing.
    pub skip_bad: bool,
    /// The most bytes the decoded images (both splits, counted as RGB) may take in memory; a
    /// larger folder is streamed from its files (0: always stream).
    pub memory_limit: u64,
}

impl FolderOptions {
    /// Images of `size` x `size`, unreadable files refused, decoded in memory up to
    /// [`DEFAULT_MEMORY_LIMIT`].
    pub fn new(size: usize) -> Self {
        Self {
            size,
            skip_bad: false,
            memory_limit: DEFAULT_MEMORY_LIMIT,
        }
    }
}

/// What loading did and left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FolderReport {
    /// Files skipped with `skip_bad`: (path, why).
    pub skipped: Vec<(PathBuf, String)>,
    /// Whether the images are streamed from their files (the folder is over the memory limit).
    pub streamed: bool,
    /// The bytes the decoded images would take in memory (counted as RGB).
    pub decoded_bytes: u64,
}

/// How an image is stored once read: `size` x `size`, `channels` planes of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredImage {
    /// Side of the square.
    pub size: usize,
    /// 1 (luma) or 3 (RGB).
    pub channels: usize,
}

/// Reads image files as stored images (`[channels, size, size]` bytes each), in order, on
/// every core; the first unreadable file (in order) is an error naming it.
pub fn read_stored(paths: &[&Path], stored: StoredImage) -> Result<Vec<Vec<u8>>> {
    on_every_core(paths, |path| {
        let square = centre_square(&decode(path)?, stored.size);
        Ok(planes(&square, stored.channels))
    })
    .into_iter()
    .collect()
}

/// The test split's folder names as a message lists them: "val/, test/, valid/ or validation/".
fn test_split_names() -> String {
    let names: Vec<String> = TEST_SPLITS.iter().map(|n| format!("{n}/")).collect();
    let (last, rest) = names.split_last().expect("TEST_SPLITS is not empty");
    format!("{} or {last}", rest.join(", "))
}

/// Whether `dir` looks like an image folder: it has sub-folders (class folders or splits).
pub fn is_image_folder(dir: &Path) -> bool {
    sub_folders(dir).is_ok_and(|s| !s.is_empty())
}

/// Loads the folder's training and test splits.
pub fn load(dir: &Path, options: FolderOptions) -> Result<(Splits, FolderReport)> {
    if options.size == 0 || options.size > MAX_STORED_SIDE {
        return Err(Error::InvalidArgument(format!(
            "{}: image size {} is outside 1..={MAX_STORED_SIDE}",
            dir.display(),
            options.size
        )));
    }
    let mut report = FolderReport::default();
    let listing = list_splits(dir, options.skip_bad, &mut report.skipped)?;
    report.decoded_bytes =
        ((listing.train.len() + listing.test.len()) * 3 * options.size * options.size) as u64;
    report.streamed = report.decoded_bytes > options.memory_limit;
    let read = |files: &[(PathBuf, usize)], report: &mut FolderReport| {
        if report.streamed {
            probe_all(files, options, report)
        } else {
            decode_all(files, options, report)
        }
    };
    let train = read(&listing.train, &mut report)?;
    let test = read(&listing.test, &mut report)?;
    let splits = build_splits(
        dir,
        &listing.classes,
        (train, test),
        options.size,
        report.streamed,
    );
    if splits.train.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: every training image was skipped as unreadable",
            dir.display()
        )));
    }
    if splits.test.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no test images (a class folder needs {HOLD_OUT_EVERY} images for one to be \
             held out, or give val/ beside train/)",
            dir.display()
        )));
    }
    Ok((splits, report))
}

/// A folder's classes and the files of each split.
struct Listing {
    classes: Vec<String>,
    train: Split,
    test: Split,
}

/// The classes and files of `dir`, in either layout (`train/` beside a test split, or class
/// folders whose every [`HOLD_OUT_EVERY`]th file is held out); at most 256 classes, and at least
/// one training file. Entries the walk could not read (a dangling link, a folder without
/// permission) are an error, or with `skip_bad` go to `skipped`.
fn list_splits(
    dir: &Path,
    skip_bad: bool,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<Listing> {
    let test_dir = TEST_SPLITS
        .iter()
        .map(|name| dir.join(name))
        .find(|d| d.is_dir());
    let train_dir = dir.join("train");
    let listing = match (train_dir.is_dir(), test_dir) {
        (true, Some(test_dir)) => {
            let classes = class_folders(&train_dir)?;
            let train = files_of(&train_dir, &classes, skip_bad, skipped)?;
            let test_classes = class_folders(&test_dir)?;
            if let Some(extra) = test_classes.iter().find(|c| !classes.contains(c)) {
                return Err(Error::InvalidArgument(format!(
                    "{}: class folder {extra:?} has no counterpart in {}",
                    test_dir.display(),
                    train_dir.display()
                )));
            }
            let test = files_of(&test_dir, &classes, skip_bad, skipped)?;
            Listing {
                classes,
                train,
                test,
            }
        }
        (true, None) => {
            return Err(Error::InvalidArgument(format!(
                "{}: has train/ but no {} folder beside it",
                dir.display(),
                test_split_names()
            )));
        }
        (false, Some(test_dir)) => {
            return Err(Error::InvalidArgument(format!(
                "{}: has no train/ folder beside it",
                test_dir.display()
            )));
        }
        (false, None) => {
            let classes = class_folders(dir)?;
            if classes
                .iter()
                .all(|c| SPLIT_LIKE.contains(&c.to_lowercase().as_str()))
            {
                return Err(Error::InvalidArgument(format!(
                    "{}: its folders {classes:?} look like splits, not classes: give train/ beside {}, each with one folder per class",
                    dir.display(),
                    test_split_names()
                )));
            }
            let (train, test) =
                hold_out(files_of(dir, &classes, skip_bad, skipped)?, classes.len());
            Listing {
                classes,
                train,
                test,
            }
        }
    };
    if listing.classes.len() > 256 {
        return Err(Error::InvalidArgument(format!(
            "{}: {} class folders; at most 256 classes are supported",
            dir.display(),
            listing.classes.len()
        )));
    }
    if listing.train.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no image files in the class folders",
            dir.display()
        )));
    }
    Ok(listing)
}

/// Files of a split: (path, label).
type Split = Vec<(PathBuf, usize)>;

/// `files` of `classes` classes, in order, cut into (train, test): every [`HOLD_OUT_EVERY`]th
/// file of each class goes to the test split.
fn hold_out(files: Split, classes: usize) -> (Split, Split) {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let mut seen = vec![0usize; classes];
    for (path, label) in files {
        let k = &mut seen[label];
        if *k % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1 {
            test.push((path, label));
        } else {
            train.push((path, label));
        }
        *k += 1;
    }
    (train, test)
}

/// The two data sets of `dir`'s images as read (`size` x `size`): grey (1 channel) when every
/// image is, RGB otherwise; the files themselves where they are `streamed` (only probed), else
/// their bytes.
fn build_splits(
    dir: &Path,
    classes: &[String],
    (train, test): (Vec<Read>, Vec<Read>),
    size: usize,
    streamed: bool,
) -> Splits {
    let channels = if train.iter().chain(&test).all(|image| image.grey) {
        1
    } else {
        3
    };
    let name = dir.display().to_string();
    let build = |split: &str, images: Vec<Read>| Dataset {
        name: format!("{name} ({split})"),
        labels: images.iter().map(|image| image.label as u8).collect(),
        images: if streamed {
            Images::Files(
                images
                    .into_iter()
                    .map(|image| image.path)
                    .collect::<Arc<[_]>>(),
            )
        } else {
            Images::Bytes(
                images
                    .iter()
                    .filter_map(|image| image.square.as_ref())
                    .flat_map(|square| planes(square, channels))
                    .collect(),
            )
        },
        channels,
        height: size,
        width: size,
        class_names: classes.to_vec(),
    };
    Splits {
        train: build("train", train),
        test: build("test", test),
    }
}

/// The sub-folders of `dir` (hidden ones left out), sorted by name.
fn sub_folders(dir: &Path) -> Result<Vec<String>> {
    let io = |e| Error::Io {
        path: dir.into(),
        source: e,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn class_folders(dir: &Path) -> Result<Vec<String>> {
    let classes = sub_folders(dir)?;
    if classes.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no class folders (one sub-folder of images per class)",
            dir.display()
        )));
    }
    Ok(classes)
}

/// Every file of every class folder of `dir` present, in class then path order: (path, label).
/// A class folder's sub-folders are read too, at any depth (as torchvision's `ImageFolder`
/// does; links followed); hidden files and folders are left out. An entry the walk cannot read
/// (a dangling link, a folder without permission, a link back to a folder above) is an error
/// naming it, or with `skip_bad` one of `skipped`.
fn files_of(
    dir: &Path,
    classes: &[String],
    skip_bad: bool,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<Vec<(PathBuf, usize)>> {
    let mut files = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let folder = dir.join(class);
        if !folder.is_dir() {
            continue;
        }
        let walk = walkdir::WalkDir::new(&folder)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walk {
            match entry {
                Ok(entry) if entry.file_type().is_file() => files.push((entry.into_path(), label)),
                Ok(_) => {}
                Err(e) => {
                    let path = e.path().unwrap_or(&folder).to_path_buf();
                    if !skip_bad {
                        return Err(Error::Io {
                            path,
                            source: e.into(),
                        });
                    }
                    skipped.push((path, e.to_string()));
                }
            }
        }
    }
    Ok(files)
}

/// One file read by [`decode_all`] (with its centre square) or [`probe_all`] (header only).
struct Read {
    path: PathBuf,
    label: usize,
    grey: bool,
    square: Option<image::DynamicImage>,
}

/// Decodes `files` on every core, in order, keeping each one's centre square. A bad file is an
/// error (the first in order) or, with `skip_bad`, a line of the report.
fn decode_all(
    files: &[(PathBuf, usize)],
    options: FolderOptions,
    report: &mut FolderReport,
) -> Result<Vec<Read>> {
    let results = on_every_core(files, |(path, _)| {
        let image = decode(path)?;
        Ok((
            !image.color().has_color(),
            Some(centre_square(&image, options.size)),
        ))
    });
    keep_readable(files, results, options, report)
}

/// Reads the headers of `files` on every core, in order: whether each is grey, and that it is
/// an image within the decoding limits. Errors as [`decode_all`]'s.
fn probe_all(
    files: &[(PathBuf, usize)],
    options: FolderOptions,
    report: &mut FolderReport,
) -> Result<Vec<Read>> {
    let results = on_every_core(files, |(path, _)| Ok((probe_grey(path)?, None)));
    keep_readable(files, results, options, report)
}

fn keep_readable(
    files: &[(PathBuf, usize)],
    results: Vec<Result<(bool, Option<image::DynamicImage>)>>,
    options: FolderOptions,
    report: &mut FolderReport,
) -> Result<Vec<Read>> {
    let mut out = Vec::with_capacity(files.len());
    for ((path, label), result) in files.iter().zip(results) {
        match result {
            Ok((grey, square)) => out.push(Read {
                path: path.clone(),
                label: *label,
                grey,
                square,
            }),
            Err(e) if options.skip_bad => report.skipped.push((path.clone(), e.to_string())),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// `f` of every item, in order, computed on every core (contiguous chunks, one per core).
fn on_every_core<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    })
}
