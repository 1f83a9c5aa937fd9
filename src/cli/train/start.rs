//! How a training run starts: new, from --init's weights, or resumed from its checkpoint. Its
//! data, model, settings and progress, each flag given checked against the checkpoint's run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hetconv::checkpoint::{self, Checkpoint, META_CONFIG};
use hetconv::data::{Augment, Dataset};
use hetconv::nn::{ConvMode, ResNetConfig};
use hetconv::train::{Progress, TrainSettings};
use hetconv::{Architecture, Context, Error, Model, Precision, Result};

use super::resume_checks::{
    augment_kind, check_resumed_settings, check_shape_flags, keep, refused,
};
use super::saved::{RunFlags, SavedRun};
use super::{DEFAULT_OUT, TrainArgs};
use crate::cli::run_folder;

/// A run ready to train.
pub(super) struct Start {
    /// The model: a new one, or the checkpoint's.
    pub model: Box<dyn Model>,
    /// The run's settings (a resumed run's own, but for --max-steps).
    pub settings: TrainSettings,
    /// Where the run stands (a new run: at the start).
    pub progress: Progress,
    /// The training images (after --train-limit).
    pub train: Dataset,
    /// The test images.
    pub test: Dataset,
    /// What defines the run, and a resume must keep.
    pub flags: RunFlags,
}

/// The flags of [`RunFlags`] that come from the command line, not the data.
struct KeptFlags {
    train_limit: Option<usize>,
    eval_limit: Option<usize>,
    checkpoint_every: Option<u64>,
    out: PathBuf,
}

/// The flags a resume keeps: the resumed run's (`saved`) where not given (--train-limit must
/// match it), else as given. A resumed run's folder moves with its checkpoint.
fn kept_flags(args: &TrainArgs, saved: Option<&RunFlags>) -> Result<KeptFlags> {
    let Some(f) = saved else {
        return Ok(KeptFlags {
            train_limit: args.train_limit,
            eval_limit: args.eval_limit,
            checkpoint_every: args.checkpoint_every,
            out: args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT)),
        });
    };
    let resume_path = args.resume.clone().unwrap_or_default();
    Ok(KeptFlags {
        train_limit: keep(
            "--train-limit",
            args.train_limit,
            f.train_limit,
            &resume_path,
        )?,
        eval_limit: args.eval_limit.or(f.eval_limit),
        checkpoint_every: args.checkpoint_every.or(f.checkpoint_every),
        out: args
            .out
            .clone()
            .unwrap_or_else(|| run_folder::of_resumed(&resume_path, &f.out)),
    })
}

/// Whether `ckpt` holds a ResNet recognised from a PyTorch file's shapes: it has no input size
/// of its own (global average pooling takes any), so it takes the data's.
fn sized_by_data(ckpt: &Checkpoint) -> bool {
    !ckpt.metadata.contains_key(META_CONFIG)
        && ckpt
            .architecture
            .as_ref()
            .is_some_and(|a| a.resnet().is_some())
}

/// The run that `args` (with the flags `given` on the command line) starts or resumes.
pub(super) fn start(ctx: &Context, args: &TrainArgs, given: &BTreeSet<String>) -> Result<Start> {
    if given.contains("crop_scale")
        && args.resume.is_none()
        && augment_kind(args.settings(args.data.reads_image_folder()).augment) != "resized"
    {
        return Err(Error::InvalidArgument(
            "--crop-scale sets the random-resized crop's smallest area; this run's augmentation is not one (--augment resized)".into(),
        ));
    }
    let resumed = match &args.resume {
        Some(path) => {
            let ckpt = checkpoint::load(path)?;
            let saved = SavedRun::from_checkpoint(&ckpt, path)?;
            Some((path.clone(), ckpt, saved))
        }
        None => None,
    };
    let saved_flags = resumed.as_ref().and_then(|(_, _, s)| s.run.as_ref());
    let KeptFlags {
        train_limit,
        eval_limit,
        checkpoint_every,
        out,
    } = kept_flags(args, saved_flags)?;
    let mut init = match &args.init {
        Some(path) if resumed.is_none() => {
            let mut ckpt = checkpoint::load(path)?;
            crate::cli::normalize_checkpoint(&mut ckpt, args.normalize.as_ref(), path)?;
            Some((path.clone(), ckpt))
        }
        _ => None,
    };
    let model_size = resumed
        .as_ref()
        .map(|(_, ckpt, _)| ckpt)
        .or(init.as_ref().map(|(_, ckpt)| ckpt))
        .filter(|ckpt| !sized_by_data(ckpt))
        .and_then(|ckpt| ckpt.architecture.as_ref())
        .map(|arch| arch.input().size);
    let splits = args.data.load(model_size)?;
    if let Some((_, ckpt)) = init.as_mut().filter(|(_, ckpt)| sized_by_data(ckpt)) {
        if let Some(Architecture::ResNet(c)) = ckpt.architecture.take() {
            let image_size = splits.train.height.max(splits.train.width);
            ckpt.architecture = Some(Architecture::ResNet(ResNetConfig { image_size, ..c }));
        }
    }
    let mut train_data = splits.train;
    if let Some(n) = train_limit {
        train_data = train_data.take(n);
    }
    let flags = RunFlags {
        train_limit,
        eval_limit,
        checkpoint_every,
        out,
        train_images: train_data.len(),
        classes: train_data.classes(),
        channels: train_data.channels,
    };
    let (model, settings, progress) = if let Some(resumed) = resumed {
        resume(ctx, args, given, resumed, &flags, &train_data)?
    } else if let Some((path, ckpt)) = &init {
        from_init(ctx, args, path, ckpt)?
    } else {
        (
            args.architecture(&train_data)?.build(ctx, args.seed)?,
            args.settings(args.data.reads_image_folder()),
            Progress::default(),
        )
    };
    let mut settings = settings;
    if args.resume.is_none() {
        settings.precision = ctx.precision();
    }
    Ok(Start {
        model,
        settings,
        progress,
        train: train_data,
        test: splits.test,
        flags,
    })
}

/// A model, its settings and where it stands.
type Trained = (Box<dyn Model>, TrainSettings, Progress);

/// The run saved at `path` (its checkpoint and run), resumed: refused where this run's data
/// (`flags`, `train`) or a flag given differs from the saved run's.
fn resume(
    ctx: &Context,
    args: &TrainArgs,
    given: &BTreeSet<String>,
    (path, ckpt, saved): (PathBuf, Checkpoint, SavedRun),
    flags: &RunFlags,
    train: &Dataset,
) -> Result<Trained> {
    let dataset_name = train.name.as_str();
    if let Some(f) = &saved.run {
        let data_now = (flags.train_images, flags.classes, flags.channels);
        let data_then = (f.train_images, f.classes, f.channels);
        if data_now != data_then {
            return Err(Error::InvalidArgument(format!(
                "{} was trained on {} ({} images, {} classes, {} channels); this data is {} ({} images, {} classes, {} channels): give the run's --data to resume it",
                path.display(),
                saved.dataset,
                f.train_images,
                f.classes,
                f.channels,
                dataset_name,
                flags.train_images,
                flags.classes,
                flags.channels
            )));
        }
        if saved.dataset != dataset_name {
            say!(
                "note: the run was trained on {}; resuming on {} (same size, classes and channels)",
                saved.dataset,
                dataset_name
            );
        }
    }
    check_shape_flags(args, &ckpt, "the resumed run", &path)?;
    let own = ckpt.architecture.as_ref().and_then(|a| a.normalize());
    if let Some(given) = args.normalize.as_ref().filter(|n| Some(*n) != own) {
        return Err(refused(
            "--normalize",
            &format!("{given:?}"),
            &format!("{own:?}"),
            &path,
        ));
    }
    crate::cli::check_class_names(&ckpt, train, &path)?;
    check_resumed_settings(args, given, ctx, &saved.settings, &path)?;
    let mode = match &ckpt.architecture {
        _ if args.unfused => ConvMode::Unfused,
        Some(arch) => arch.mode(),
        None => ConvMode::Fused,
    };
    say!(
        "resuming {} at step {}",
        path.display(),
        saved.progress.step
    );
    let mut settings = saved.settings;
    if args.max_steps.is_some() {
        settings.max_steps = args.max_steps;
    }
    Ok((
        ckpt.build_model(ctx, mode).map_err(|e| e.in_file(&path))?,
        settings,
        saved.progress,
    ))
}

/// A new run from the weights of the checkpoint at `path` (--init).
fn from_init(ctx: &Context, args: &TrainArgs, path: &Path, ckpt: &Checkpoint) -> Result<Trained> {
    check_shape_flags(args, ckpt, "--init", path)?;
    if ckpt.folded > 0 {
        say!(
            "{}: folded {} non-zero 1x1 weights of filters' own blocks into 3x3 centre taps",
            path.display(),
            ckpt.folded
        );
    }
    let mode = if args.unfused {
        ConvMode::Unfused
    } else {
        ConvMode::Fused
    };
    Ok((
        ckpt.build_model(ctx, mode).map_err(|e| e.in_file(path))?,
        args.settings(args.data.reads_image_folder()),
        Progress::default(),
    ))
}

/// Prints what the run trains: the adapter, the data, the model `arch` with its cost, the
/// precision and the augmentation.
pub(super) fn print_header(ctx: &Context, arch: &Architecture, start: &Start) {
    let cost = arch.cost();
    say!(
        "adapter  {} ({:?})",
        ctx.adapter_info().name,
        ctx.adapter_info().backend
    );
    say!(
        "data     {} ({} training images, {} test images, {} classes)",
        start.train.name,
        start.train.len(),
        start.test.len(),
        start.train.classes()
    );
    say!(
        "model    {arch}, {:?}; {} MACs per image, {:.3}M parameters",
        arch.mode(),
        hetconv::flops::millions(cost.macs),
        cost.params as f64 / 1e6
    );
    say!(
        "precision {}{}",
        start.settings.precision,
        match start.settings.precision {
            Precision::Mixed =>
                " (f16 operands and activations, f32 weights and sums, dynamic loss scale)",
            Precision::F32 => "",
        }
    );
    say!(
        "augment  {}",
        match start.settings.augment {
            None => "none".to_string(),
            Some(Augment {
                resized_crop: Some(crop),
                ..
            }) => format!(
                "random-resized crop ({}..1 of the area, aspect 3/4..4/3) and horizontal flip",
                crop.min_scale
            ),
            Some(a) => format!(
                "random crop from a {}-pixel zero pad{}",
                a.crop_padding,
                if a.flip { " and horizontal flip" } else { "" }
            ),
        }
    );
}
