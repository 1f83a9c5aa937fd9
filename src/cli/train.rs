//! `hetconv train`: train a HetConv VGG-16 or ResNet, with progress, per-epoch evaluation,
//! metrics, a chart and atomic checkpoints (also on Ctrl-C).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::args::{self, ModelName};
use hetconv::checkpoint::{self, Checkpoint, META_CLASSES, META_CONFIG, META_PROGRESS, META_STEP};
use hetconv::data::{Augment, Dataset};
use hetconv::dist::{BatchNormStats, Communicator, ExchangeClock, Leeway, Watchdog};
use hetconv::nn::{ConvMode, ResNetConfig, ResNetLayout, VggConfig};
use hetconv::optim::{LrSchedule, Schedule};
use hetconv::train::{Progress, TrainSettings, Trainer};
use hetconv::{Architecture, Model};
use hetconv::{Context, Error, Precision, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::data_args::DataArgs;
use super::epoch_end::{self, EpochTally, TestSplit, finish_epoch};
use super::report::Metrics;
use super::run_folder;

/// The learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// x0.2 at the --milestones epochs (the paper: 50, 140, 210, 240, 270, 300).
    Multistep,
    /// Cosine decay to zero over the run.
    Cosine,
    /// The same rate throughout.
    Constant,
}

/// The training augmentation (`--augment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AugmentArg {
    /// Random crop from a 4-pixel zero pad, and a horizontal flip.
    Pad,
    /// Random-resized crop and a horizontal flip.
    Resized,
}

/// Options of `hetconv train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The network: vgg16 (the default), torchvision's ImageNet ResNets resnet18, resnet34,
    /// resnet50, resnet101, resnet152, or the CIFAR ResNets resnet20, resnet32, resnet44,
    /// resnet56, resnet110 (depth 6n + 2); every 3x3 conv of a ResNet block is HetConv(P)
    /// (with --init or --resume: the checkpoint's, and another is refused).
    #[arg(long, value_parser = args::model_name)]
    pub model: Option<ModelName>,
    /// HetConv part P: each filter has 3x3 kernels on 1/P of its inputs, 1x1 on the rest
    /// (default 4; with --init or --resume, the checkpoint's, and a different one is refused).
    #[arg(long, value_parser = args::at_least_one)]
    pub part: Option<usize>,
    /// The VGG's 13 conv widths, comma-separated (default: the paper's 64,...,512 times
    /// --width-mult).
    #[arg(long, value_delimiter = ',', conflicts_with = "width_mult")]
    pub widths: Option<Vec<usize>>,
    /// Scale the VGG's paper widths (0.125 gives 8..64 channels: quick on a software GPU).
    #[arg(long, allow_negative_numbers = true, value_parser = args::width_mult)]
    pub width_mult: Option<f64>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 330, value_parser = args::at_least_one)]
    pub epochs: usize,
    /// Stop after this many steps in total.
    #[arg(long, value_parser = args::steps)]
    pub max_steps: Option<u64>,
    /// Images per step.
    #[arg(long, default_value_t = 128, value_parser = args::at_least_one)]
    pub batch_size: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true, value_parser = args::non_negative)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true, value_parser = args::momentum)]
    pub momentum: f64,
    /// Weight decay on every parameter.
    #[arg(long, default_value_t = 5e-4, allow_negative_numbers = true, value_parser = args::non_negative)]
    pub weight_decay: f64,
    /// Nesterov momentum.
    #[arg(long)]
    pub nesterov: bool,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Multistep)]
    pub schedule: ScheduleArg,
    /// Epochs at which multistep multiplies the rate by --gamma.
    #[arg(long, value_delimiter = ',', default_value = "50,140,210,240,270,300")]
    pub milestones: Vec<usize>,
    /// Multistep factor.
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true, value_parser = args::factor)]
    pub gamma: f64,
    /// Epochs of linear warm-up.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = args::non_negative)]
    pub warmup_epochs: f64,
    /// No random crop and flip.
    #[arg(long, conflicts_with = "augment")]
    pub no_augment: bool,
    /// Training augmentation: `pad` (the paper's random crop from a 4-pixel zero pad and a
    /// horizontal flip; the default) or `resized` (torchvision's random-resized crop of
    /// --crop-scale to all of the area, aspect ratio 3/4 to 4/3, and a flip; the default for
    /// image folders).
    #[arg(long, value_enum)]
    pub augment: Option<AugmentArg>,
    /// Normalise the model's input: `imagenet` (torchvision's mean and std) or MEANS/STDS (one
    /// per channel, e.g. 0.5/0.25 for grey images). The model applies it itself, so eval,
    /// predict and the page give it pixels in [0, 1]; with --init it is given to a checkpoint
    /// that has none (a PyTorch file), and one that differs from the checkpoint's is refused.
    #[arg(long, value_parser = args::normalize)]
    pub normalize: Option<hetconv::data::Normalize>,
    /// The smallest area fraction a random-resized crop covers (torchvision's 0.08).
    #[arg(long, default_value_t = 0.08, allow_negative_numbers = true, value_parser = args::factor)]
    pub crop_scale: f64,
    /// Keep the data set's order.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Seed of initialisation, order and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Start from these weights (a hetconv checkpoint or a PyTorch state_dict in safetensors).
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Continue a run from its checkpoint: same settings, same trajectory.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Where to write the checkpoint (default: OUT/checkpoint.safetensors).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Folder for metrics, the chart and the checkpoint (default runs/latest; with --resume,
    /// the run's own folder). A new run never writes over a previous one: a previous run there
    /// is moved, whole, to OUT.1 (or the first free OUT.N), unless --overwrite.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write over the previous run in --out (its checkpoint, metrics and chart) and over an
    /// existing --save file, instead of moving the run aside or refusing the file.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Also save a checkpoint every this many steps (always: at each epoch's end).
    #[arg(long, value_parser = args::steps)]
    pub checkpoint_every: Option<u64>,
    /// Read the loss back every this many steps.
    #[arg(long, default_value_t = 10, value_parser = args::steps)]
    pub report_every: u64,
    /// Use only the first N training images.
    #[arg(long, value_parser = args::at_least_one)]
    pub train_limit: Option<usize>,
    /// Evaluate on only the first N test images.
    #[arg(long, value_parser = args::at_least_one)]
    pub eval_limit: Option<usize>,
    /// Compute HetConv as grouped 3x3 + masked 1x1 passes (the PyTorch form) instead of fused.
    #[arg(long)]
    pub unfused: bool,
    /// Under mpirun: BatchNorm's batch statistics over every rank's images (synchronised batch
    /// norm), so that N ranks train as one process with the whole batch; without it each rank
    /// normalises with its own share's statistics (as PyTorch's DDP), which is faster. Nothing
    /// changes in a single process.
    #[arg(long)]
    pub sync_bn: bool,
    /// Under mpirun: end the job when one exchange between the ranks has waited this many
    /// seconds (a rank that hangs would otherwise keep the others waiting for ever). The first
    /// steps wait for the slowest rank's shader compilation; rank 0's evaluation and checkpoint
    /// at an epoch's end are waited for without limit.
    #[arg(long, default_value_t = 600, value_parser = args::at_least_one)]
    pub exchange_timeout: usize,
}

/// Training progress and settings as stored in a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedRun {
    progress: Progress,
    settings: TrainSettings,
    dataset: String,
    /// The run's own flags and data (absent in checkpoints of hetconv before they were kept).
    #[serde(default)]
    run: Option<RunFlags>,
}

/// What else defines a run and a resume must keep: its data (size, classes, channels after
/// --train-limit), its folder and its checkpoint interval.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct RunFlags {
    train_limit: Option<usize>,
    eval_limit: Option<usize>,
    checkpoint_every: Option<u64>,
    out: PathBuf,
    train_images: usize,
    classes: usize,
    channels: usize,
}

/// The run folder when --out is left out.
const DEFAULT_OUT: &str = "runs/latest";

impl TrainArgs {
    /// The run's settings; `image_folder`: the data is a folder of images (whose default
    /// augmentation is the random-resized crop).
    fn settings(&self, image_folder: bool) -> TrainSettings {
        let schedule = match self.schedule {
            ScheduleArg::Multistep => Schedule::MultiStep {
                milestones: self.milestones.clone(),
                gamma: self.gamma,
            },
            ScheduleArg::Cosine => Schedule::Cosine {
                total_epochs: self.epochs,
            },
            ScheduleArg::Constant => Schedule::Constant,
        };
        TrainSettings {
            epochs: self.epochs,
            max_steps: self.max_steps,
            batch_size: self.batch_size,
            lr: LrSchedule {
                base_lr: self.lr,
                schedule,
                warmup_epochs: self.warmup_epochs,
            },
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            augment: (!self.no_augment).then(|| match self.augment {
                Some(AugmentArg::Resized) => Augment::resized(self.crop_scale as f32),
                None if image_folder => Augment::resized(self.crop_scale as f32),
                _ => Augment::default(),
            }),
            shuffle: !self.no_shuffle,
            seed: self.seed,
            report_every: self.report_every.max(1),
            precision: Precision::F32,
        }
    }

    /// The network of a new run, shaped for `data` (its channels, classes and image size).
    fn architecture(&self, data: &Dataset) -> Result<Architecture> {
        let mode = if self.unfused {
            ConvMode::Unfused
        } else {
            ConvMode::Fused
        };
        match self.model.unwrap_or(ModelName::Vgg16) {
            ModelName::Vgg16 => Ok(Architecture::Vgg16(VggConfig {
                mode,
                ..self.vgg_config(data)?
            })),
            ModelName::ResNet(depth) => {
                if self.widths.is_some() || self.width_mult.is_some() {
                    return Err(Error::InvalidArgument(format!(
                        "--widths and --width-mult shape the VGG-16; resnet{depth} has its paper's widths"
                    )));
                }
                let part = self.part.unwrap_or(4);
                let base = ResNetConfig::cifar(depth, part);
                let base = match base.layout() {
                    Some(ResNetLayout::ImageNet) => ResNetConfig::imagenet(depth, part),
                    _ => base,
                };
                // Global average pooling takes any size: the images' own.
                let config = ResNetConfig {
                    in_channels: data.channels,
                    classes: data.classes(),
                    image_size: data.height.max(data.width),
                    mode,
                    ..base
                };
                Ok(Architecture::ResNet(config))
            }
        }
        .map(|arch| arch.with_normalize(self.normalize.clone()))
        .and_then(|arch| {
            arch.validate()
                .map_err(|e| Error::InvalidArgument(format!("{}: {e}", self.shape_flags())))?;
            Ok(arch)
        })
    }

    /// The flags that shape a new run's network, as given (or `--part 4`, the default), for
    /// an error about the network they describe.
    fn shape_flags(&self) -> String {
        let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        let mut flags = vec![format!("--part {}", self.part.unwrap_or(4))];
        if let Some(model) = &self.model {
            flags.insert(0, format!("--model {model}"));
        }
        if let Some(widths) = &self.widths {
            flags.push(format!("--widths {}", list(widths)));
        }
        if let Some(mult) = self.width_mult {
            flags.push(format!("--width-mult {mult}"));
        }
        if let Some(n) = &self.normalize {
            flags.push(format!("--normalize {n}"));
        }
        flags.join(" ")
    }

    /// The VGG of a new run; a P larger than a scaled width is refused (the widths would be
    /// raised to P, silently growing the model).
    fn vgg_config(&self, data: &Dataset) -> Result<VggConfig> {
        let part = self.part.unwrap_or(4);
        let mut config = match &self.widths {
            Some(widths) => VggConfig {
                widths: widths.clone(),
                hidden: *widths.last().unwrap_or(&512),
                ..VggConfig::paper(part)
            },
            None => super::scaled_vgg("--part", part, self.width_mult)?,
        };
        config.in_channels = data.channels;
        config.classes = data.classes();
        // The smallest VGG input that holds the images (28x28 MNIST is padded to 32x32).
        config.image_size = data.height.max(data.width).next_multiple_of(32);
        Ok(config)
    }
}

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

fn save(trainer: &Trainer, dataset: &str, flags: &RunFlags, path: &std::path::Path) -> Result<()> {
    let checkpoint =
        Checkpoint::from_model_blocking(trainer.model(), true, metadata(trainer, dataset, flags)?)?;
    checkpoint::save(path, &checkpoint)
}

/// A run-defining value on `--resume`: the run's own (`saved`, None: none was set) unless the
/// flag gives another, which is refused.
fn keep<T: PartialEq + std::fmt::Display>(
    flag: &str,
    given: Option<T>,
    saved: Option<T>,
    resume: &std::path::Path,
) -> Result<Option<T>> {
    let show = |v: &Option<T>| v.as_ref().map_or("none".to_string(), |v| v.to_string());
    if given.is_some() && given != saved {
        return Err(refused(flag, &show(&given), &show(&saved), resume));
    }
    Ok(saved)
}

fn refused(flag: &str, given: &str, saved: &str, resume: &std::path::Path) -> Error {
    Error::InvalidArgument(format!(
        "{flag} {given} differs from the resumed run's {saved} ({}): leave it out to continue the run as it was, or start a new run from these weights with --init",
        resume.display()
    ))
}

/// On `--resume`, every training flag given on the command line must agree with the saved
/// settings (none is silently ignored); `--max-steps`, where the run stops, may change.
fn check_resumed_settings(
    args: &TrainArgs,
    given: &BTreeSet<String>,
    ctx: &Context,
    saved: &TrainSettings,
    resume: &std::path::Path,
) -> Result<()> {
    // Each flag (clap id) with the setting it defines: (flag, on this command line, saved).
    let settings_of = |s: &TrainSettings, precision: Precision| -> Vec<(&'static str, String)> {
        let schedule = format!("{:?}", s.lr.schedule);
        vec![
            ("epochs", s.epochs.to_string()),
            ("batch_size", s.batch_size.to_string()),
            ("lr", s.lr.base_lr.to_string()),
            ("warmup_epochs", s.lr.warmup_epochs.to_string()),
            ("schedule", schedule.clone()),
            ("milestones", schedule.clone()),
            ("gamma", schedule),
            ("momentum", s.momentum.to_string()),
            ("weight_decay", s.weight_decay.to_string()),
            ("nesterov", s.nesterov.to_string()),
            ("no_augment", s.augment.is_none().to_string()),
            ("augment", augment_kind(s.augment).to_string()),
            ("crop_scale", crop_scale(s.augment)),
            ("no_shuffle", (!s.shuffle).to_string()),
            ("seed", s.seed.to_string()),
            ("report_every", s.report_every.to_string()),
            ("precision", precision.to_string()),
        ]
    };
    let mut wanted = settings_of(
        &args.settings(args.data.reads_image_folder()),
        ctx.precision(),
    );
    // --crop-scale alone keeps the run's augmentation: compare the value given.
    for (flag, value) in &mut wanted {
        if *flag == "crop_scale" {
            *value = (args.crop_scale as f32).to_string();
        }
    }
    let kept = settings_of(saved, saved.precision);
    for ((flag, new), (_, old)) in wanted.iter().zip(&kept) {
        if given.contains(*flag) && new != old {
            let flag = format!("--{}", flag.replace('_', "-"));
            return Err(refused(&flag, new, old, resume));
        }
    }
    Ok(())
}

/// The augmentation's kind as `--augment` names it (`none` for --no-augment).
fn augment_kind(augment: Option<Augment>) -> &'static str {
    match augment {
        None => "none",
        Some(Augment {
            resized_crop: Some(_),
            ..
        }) => "resized",
        Some(_) => "pad",
    }
}

/// The random-resized crop's smallest area fraction (`none` without one).
fn crop_scale(augment: Option<Augment>) -> String {
    match augment.and_then(|a| a.resized_crop) {
        Some(crop) => crop.min_scale.to_string(),
        None => "none".into(),
    }
}

/// With `--init` or `--resume` the model's shape is the checkpoint's: --model, --part,
/// --widths and --width-mult must describe the same one, or be left out.
fn check_shape_flags(
    args: &TrainArgs,
    checkpoint: &Checkpoint,
    from: &str,
    path: &std::path::Path,
) -> Result<()> {
    let Some(arch) = checkpoint.architecture.as_ref() else {
        return Err(Error::InvalidArgument(format!(
            "{from} {} holds a custom network: `hetconv train` trains the zoo's networks",
            path.display(),
        )));
    };
    let differs = |flag: &str, value: String| {
        Error::InvalidArgument(format!(
            "{flag} {value} does not describe the model of {from} {} ({arch}; P = {}): leave it out, the checkpoint's shape is used",
            path.display(),
            arch.parts(),
        ))
    };
    if let Some(model) = args.model {
        let name = match model {
            ModelName::Vgg16 => "vgg16".to_string(),
            ModelName::ResNet(depth) => format!("resnet{depth}"),
        };
        if name != arch.name() {
            return Err(differs("--model", name));
        }
    }
    if let Some(p) = args.part.filter(|p| *p != arch.parts()) {
        return Err(differs("--part", p.to_string()));
    }
    let widths = arch.vgg().map(|c| c.widths.clone());
    if let Some(w) = args.widths.as_ref().filter(|w| Some(*w) != widths.as_ref()) {
        return Err(differs("--widths", format!("{w:?}")));
    }
    if let Some(m) = args.width_mult {
        let scaled = VggConfig::paper(arch.parts()).with_width_mult(m).widths;
        if Some(scaled) != widths {
            return Err(differs("--width-mult", m.to_string()));
        }
    }
    Ok(())
}

/// Runs the command; `given` names the flags given on the command line. Under an MPI launcher
/// (`mpirun -n N hetconv train ...`) this process is one rank of a data-parallel run: only rank
/// 0 prints and writes, and a rank that fails prints its error and ends every rank's process
/// (the others would wait for it in their next exchange).
pub fn run(ctx: &Context, args: TrainArgs, given: &BTreeSet<String>) -> Result<()> {
    let limit = std::time::Duration::from_secs(args.exchange_timeout as u64);
    let Some(watchdog) = communicator(limit)? else {
        return run_rank(ctx, args, given, None);
    };
    let (clock, leeway) = (watchdog.clock(), watchdog.leeway());
    let comm: Rc<dyn Communicator> = Rc::new(watchdog);
    let ranks = Ranks {
        comm: comm.clone(),
        clock,
        leeway,
    };
    match run_rank(ctx, args, given, Some(ranks)) {
        // An interrupt stops every rank at the same step: an orderly shutdown.
        Err(e @ Error::Interrupted { .. }) => Err(e),
        Err(e) if comm.size() > 1 => {
            eprintln!("error: rank {} of {}: {e}", comm.rank(), comm.size());
            comm.abort(1)
        }
        result => result,
    }
}

/// This process as one rank of a data-parallel run.
struct Ranks {
    comm: Rc<dyn Communicator>,
    /// The time the exchanges took.
    clock: ExchangeClock,
    /// Lifts the exchanges' limit where a long wait is expected.
    leeway: Leeway,
}

/// [`run`] on one of `ranks` (None: a single-process run).
fn run_rank(
    ctx: &Context,
    args: TrainArgs,
    given: &BTreeSet<String>,
    ranks: Option<Ranks>,
) -> Result<()> {
    let rank0 = ranks.as_ref().is_none_or(|r| r.comm.rank() == 0);
    super::set_quiet(!rank0);
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
            let saved: SavedRun = match ckpt.metadata.get(META_PROGRESS) {
                Some(json) => serde_json::from_str(json).map_err(|e| Error::File {
                    path: path.clone(),
                    message: format!("bad {META_PROGRESS} metadata: {e}"),
                })?,
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "{}: no training progress in this checkpoint (use --init to start from its weights)",
                        path.display()
                    )));
                }
            };
            Some((path.clone(), ckpt, saved))
        }
        None => None,
    };
    let saved_flags = resumed.as_ref().and_then(|(_, _, s)| s.run.clone());
    let resume_path = args.resume.clone().unwrap_or_default();
    let (train_limit, eval_limit, checkpoint_every, out) = match &saved_flags {
        Some(f) => (
            keep(
                "--train-limit",
                args.train_limit,
                f.train_limit,
                &resume_path,
            )?,
            args.eval_limit.or(f.eval_limit),
            args.checkpoint_every.or(f.checkpoint_every),
            args.out
                .clone()
                .unwrap_or_else(|| run_folder::of_resumed(&resume_path, &f.out)),
        ),
        None => (
            args.train_limit,
            args.eval_limit,
            args.checkpoint_every,
            args.out
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT)),
        ),
    };
    let mut init = match &args.init {
        Some(path) if resumed.is_none() => {
            let mut ckpt = checkpoint::load(path)?;
            super::normalize_checkpoint(&mut ckpt, args.normalize.as_ref(), path)?;
            Some((path.clone(), ckpt))
        }
        _ => None,
    };
    // A ResNet recognised from a PyTorch file's shapes has no input size of its own (global
    // average pooling takes any): it takes the data's.
    let sized_by_data = |ckpt: &Checkpoint| {
        !ckpt.metadata.contains_key(META_CONFIG)
            && ckpt
                .architecture
                .as_ref()
                .is_some_and(|a| a.resnet().is_some())
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
    let dataset_name = train_data.name.clone();
    let flags = RunFlags {
        train_limit,
        eval_limit,
        checkpoint_every,
        out: out.clone(),
        train_images: train_data.len(),
        classes: train_data.classes(),
        channels: train_data.channels,
    };
    let (model, settings, progress) = if let Some((path, ckpt, saved)) = resumed {
        if let Some(f) = &saved_flags {
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
        check_shape_flags(&args, &ckpt, "the resumed run", &path)?;
        let own = ckpt.architecture.as_ref().and_then(|a| a.normalize());
        if let Some(given) = args.normalize.as_ref().filter(|n| Some(*n) != own) {
            return Err(refused(
                "--normalize",
                &format!("{given:?}"),
                &format!("{own:?}"),
                &path,
            ));
        }
        super::check_class_names(&ckpt, &train_data, &path)?;
        check_resumed_settings(&args, given, ctx, &saved.settings, &path)?;
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
        (
            ckpt.build_model(ctx, mode).map_err(|e| e.in_file(&path))?,
            settings,
            saved.progress,
        )
    } else if let Some((path, ckpt)) = &init {
        check_shape_flags(&args, ckpt, "--init", path)?;
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
        (
            ckpt.build_model(ctx, mode).map_err(|e| e.in_file(path))?,
            args.settings(args.data.reads_image_folder()),
            Progress::default(),
        )
    } else {
        (
            args.architecture(&train_data)?.build(ctx, args.seed)?,
            args.settings(args.data.reads_image_folder()),
            Progress::default(),
        )
    };
    let arch = model
        .architecture()
        .ok_or_else(|| Error::InvalidArgument("the model is not one of the zoo's".into()))?;
    let cost = arch.cost();
    say!(
        "adapter  {} ({:?})",
        ctx.adapter_info().name,
        ctx.adapter_info().backend
    );
    say!(
        "data     {} ({} training images, {} test images, {} classes)",
        dataset_name,
        train_data.len(),
        splits.test.len(),
        train_data.classes()
    );
    say!(
        "model    {arch}, {:?}; {} MACs per image, {:.3}M parameters",
        arch.mode(),
        hetconv::flops::millions(cost.macs),
        cost.params as f64 / 1e6
    );
    let mut settings = settings;
    if args.resume.is_none() {
        settings.precision = ctx.precision();
    }
    say!(
        "precision {}{}",
        settings.precision,
        match settings.precision {
            Precision::Mixed =>
                " (f16 operands and activations, f32 weights and sums, dynamic loss scale)",
            Precision::F32 => "",
        }
    );
    say!(
        "augment  {}",
        match settings.augment {
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
    let eval_batch = settings.batch_size.max(2);
    let mut trainer = Trainer::new(model, train_data, settings, progress)?;
    let (mut exchange, mut leeway) = (None, None);
    if let Some(Ranks {
        comm,
        clock,
        leeway: lift,
    }) = ranks
    {
        let ranks = comm.size();
        (exchange, leeway) = (Some(clock), Some(lift));
        let batch_norm = if args.sync_bn {
            BatchNormStats::Synchronised
        } else {
            BatchNormStats::PerRank
        };
        trainer = pollster::block_on(trainer.distributed(Box::new(comm), batch_norm))?;
        say!(
            "ranks    {ranks} (MPI, data-parallel: {} images per rank per step; BatchNorm statistics {})",
            trainer.settings().batch_size / ranks,
            match batch_norm {
                BatchNormStats::Synchronised => "over all ranks' images (--sync-bn)",
                BatchNormStats::PerRank => "per rank",
            }
        );
    }
    let save_path = args
        .save
        .clone()
        .unwrap_or_else(|| out.join("checkpoint.safetensors"));
    // Rank 0 alone writes (every rank checking the same path raced on its probe file).
    if rank0 {
        if args.resume.is_none() {
            if let Some(moved) = run_folder::make_room(&out, &save_path, args.overwrite)? {
                say!(
                    "moved the previous run in {} to {}",
                    out.display(),
                    moved.display()
                );
            }
        }
        super::check_writable(&save_path)?;
    }
    let resume_step = args.resume.as_ref().map(|_| trainer.progress().step);
    let mut metrics = if rank0 {
        Some(Metrics::open(
            &out,
            resume_step,
            trainer.steps_per_epoch(),
            trainer.total_steps(),
        )?)
    } else {
        None
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).map_err(|e| {
            Error::InvalidArgument(format!("cannot install the Ctrl-C handler: {e}"))
        })?;
    }
    let bar = if rank0 {
        ProgressBar::new(trainer.total_steps())
    } else {
        ProgressBar::hidden()
    };
    bar.set_position(trainer.progress().step);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps {msg} (ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let test_split = TestSplit {
        data: &splits.test,
        batch: eval_batch,
        limit: eval_limit,
    };
    // Every rank knows where the resumed run stands; rank 0 alone has the rows.
    if let Some(step) = resume_step.and_then(|_| epoch_end::resumed_at_epoch_end(&trainer)) {
        if let Some(metrics) = metrics.as_mut() {
            epoch_end::recover_missing_row(&trainer, &test_split, step, &bar, metrics)?;
        }
        if let Some(leeway) = leeway.as_ref() {
            leeway.unlimited(|| trainer.any_rank(false))?;
        }
    }
    let mut epoch_start = Instant::now();
    let mut epoch_images = 0usize;
    // A run resumed within an epoch starts the epoch's means from its rows before the resume.
    let epoch_began = trainer.epoch() as u64 * trainer.steps_per_epoch();
    let (mut loss_sum, mut acc_sum, mut sampled) = metrics
        .as_ref()
        .map_or((0.0, 0.0, 0), |m| m.sampled_after(epoch_began));
    let mut stepping = std::time::Duration::ZERO;
    while !trainer.is_done() {
        bar.set_prefix(format!("{}", trainer.epoch() + 1));
        let step_start = Instant::now();
        let report = pollster::block_on(trainer.step())?;
        stepping += step_start.elapsed();
        bar.inc(1);
        epoch_images += report.images;
        if let Some((loss, accuracy)) = report.metrics {
            let rate = epoch_images as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
            let scale = report
                .scaler
                .map(|s| format!(" scale {} ({} skipped)", s.scale, s.skipped))
                .unwrap_or_default();
            bar.set_message(format!(
                "loss {loss:.3} acc {:.1}% {rate:.0} img/s lr {:.4}{scale}",
                100.0 * accuracy,
                report.lr
            ));
            if let Some(metrics) = metrics.as_mut() {
                metrics.step(report.step, report.epoch, report.lr, loss, accuracy)?;
            }
            loss_sum += loss;
            acc_sum += accuracy;
            sampled += 1;
        }
        let periodic = checkpoint_every.is_some_and(|n| report.step % n.max(1) == 0);
        // Every rank stops at the same step when any was interrupted.
        let interrupt = trainer.any_rank(interrupted.load(Ordering::SeqCst))?;
        let save_on_rank0 = |trainer: &Trainer| {
            if rank0 {
                save(trainer, &dataset_name, &flags, &save_path)
            } else {
                Ok(())
            }
        };
        if (report.epoch_done || trainer.is_done()) && !rank0 {
            (loss_sum, acc_sum, sampled, epoch_images) = (0.0, 0.0, 0, 0);
            epoch_start = Instant::now();
        } else if report.epoch_done || trainer.is_done() {
            let seconds = epoch_start.elapsed().as_secs_f64();
            // Saved before the evaluation: an evaluation that fails loses no training.
            save_on_rank0(&trainer)?;
            let tally = EpochTally {
                loss_sum,
                accuracy_sum: acc_sum,
                sampled,
                timing: Some((seconds, epoch_images)),
            };
            finish_epoch(
                &trainer,
                &test_split,
                report.epoch + 1,
                report.step,
                tally,
                &bar,
                metrics.as_mut(),
            )?;
            (loss_sum, acc_sum, sampled, epoch_images) = (0.0, 0.0, 0, 0);
            epoch_start = Instant::now();
        } else if periodic {
            save_on_rank0(&trainer)?;
        }
        // Rank 0 alone evaluated or saved: the other ranks wait for it here, without the
        // exchanges' limit (a long evaluation is not a hung rank).
        let rank0_worked = report.epoch_done || trainer.is_done() || periodic;
        if let Some(leeway) = leeway.as_ref().filter(|_| rank0_worked) {
            leeway.unlimited(|| trainer.any_rank(false))?;
        }
        if interrupt {
            save_on_rank0(&trainer)?;
            bar.abandon_with_message("interrupted");
            return Err(Error::Interrupted {
                step: trainer.progress().step,
                checkpoint: save_path.clone(),
            });
        }
    }
    bar.finish();
    let (_, ranks) = trainer.rank();
    if let Some(clock) = exchange.filter(|_| ranks > 1) {
        let exchanged = clock.total().as_secs_f64();
        say!(
            "exchange {exchanged:.1} s of the steps' {:.1} s ({:.0}%) summing gradients over {ranks} ranks (MPI, waits included)",
            stepping.as_secs_f64(),
            100.0 * exchanged / stepping.as_secs_f64().max(1e-9)
        );
    }
    let Some(metrics) = metrics else {
        return Ok(());
    };
    let chart = metrics.chart(&format!(
        "{} P={} on {}",
        arch.title(),
        arch.parts(),
        dataset_name
    ))?;
    if let Some(last) = metrics.epoch_rows.last() {
        say!(
            "final test accuracy {:.2}% (loss {:.4})",
            100.0 * last.test_accuracy,
            last.test_loss
        );
    }
    say!(
        "checkpoint {}\nchart      {}\nmetrics    {}",
        save_path.display(),
        chart.display(),
        out.display()
    );
    Ok(())
}

/// The data-parallel communicator when this process was started by an MPI launcher (the `mpi`
/// feature), else None: a single-process run. Every exchange may wait at most `limit`
/// ([`hetconv::dist::Watchdog`]).
#[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
fn communicator(limit: std::time::Duration) -> Result<Option<Watchdog>> {
    #[cfg(feature = "mpi")]
    if let Some(comm) = hetconv::dist::mpi::MpiCommunicator::from_launcher()? {
        return Ok(Some(Watchdog::new(Box::new(comm), limit)?));
    }
    Ok(None)
}
