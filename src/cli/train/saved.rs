//! What a training run keeps in its checkpoint's metadata, and the save itself: its progress,
//! settings and data set, and the flags that define the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hetconv::checkpoint::{self, Checkpoint, META_CLASSES, META_PROGRESS, META_STEP};
use hetconv::train::{Progress, TrainSettings, Trainer};
use hetconv::{Error, Result};

/// Training progress and settings as stored in a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct SavedRun {
    pub progress: Progress,
    pub settings: TrainSettings,
    pub dataset: String,
    /// The run's own flags and data (absent in checkpoints of hetconv before they were kept).
    #[serde(default)]
    pub run: Option<RunFlags>,
}

impl SavedRun {
    /// The run saved in `ckpt`, read from `path`; refused when the checkpoint holds weights only.
    pub fn from_checkpoint(ckpt: &Checkpoint, path: &Path) -> Result<Self> {
        let Some(json) = ckpt.metadata.get(META_PROGRESS) else {
            return Err(Error::InvalidArgument(format!(
                "{}: no training progress in this checkpoint (use --init to start from its weights)",
                path.display()
            )));
        };
        serde_json::from_str(json).map_err(|e| Error::File {
            path: path.to_path_buf(),
            message: format!("bad {META_PROGRESS} metadata: {e}"),
        })
    }
}

/// What else defines a run and a resume must keep: its data (size, classes, channels after
/// --train-limit), its folder and its checkpoint interval.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct RunFlags {
    pub train_limit: Option<usize>,
    pub eval_limit: Option<usize>,
    pub checkpoint_every: Option<u64>,
    pub out: PathBuf,
    pub train_images: usize,
    pub classes: usize,
    pub channels: usize,
}

/// The checkpoint metadata of `trainer`'s run on the data set named `dataset`: its class names,
/// progress, settings and flags.
fn metadata(trainer: &Trainer, dataset: &str, flags: &RunFlags) -> Result<HashMap<String, String>> {
    let run = SavedRun {
        progress: pollster::block_on(trainer.checkpoint_progress())?,
        settings: trainer.settings().clone(),
        dataset: dataset.to_string(),
        run: Some(flags.clone()),
    };
    let json = serde_json::to_string(&run).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let classes = serde_json::to_string(&trainer.data().class_names)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    Ok(HashMap::from([
        (META_CLASSES.to_string(), classes),
        (META_PROGRESS.to_string(), json),
        (META_STEP.to_string(), trainer.progress().step.to_string()),
    ]))
}

/// Saves `trainer`'s model and run to `path` (atomically: see [`checkpoint::save`]).
pub(super) fn save(trainer: &Trainer, dataset: &str, flags: &RunFlags, path: &Path) -> Result<()> {
    let checkpoint =
        Checkpoint::from_model_blocking(trainer.model(), true, metadata(trainer, dataset, flags)?)?;
    checkpoint::save(path, &checkpoint)
}
