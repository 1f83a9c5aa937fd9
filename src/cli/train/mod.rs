//! `hetconv train`: train a HetConv VGG-16 or ResNet, with progress, per-epoch evaluation,
//! metrics, a chart and atomic checkpoints (also on Ctrl-C).
//!
//! This file holds the flags and the run's ranks; `start.rs` starts or resumes the run,
//! `resume_checks.rs` checks the flags against a checkpoint's run, `saved.rs` is what a
//! checkpoint keeps of the run, and `steps.rs` is the training loop.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::rc::Rc;

use clap::{Args, ValueEnum};

use super::args::{self, ModelName};
use super::data_args::DataArgs;
use hetconv::data::{Augment, Dataset};
use hetconv::dist::{Communicator, ExchangeClock, Leeway, Watchdog};
use hetconv::nn::{ConvMode, ResNetConfig, ResNetLayout, VggConfig};
use hetconv::optim::{LrSchedule, Schedule};
use hetconv::train::TrainSettings;
use hetconv::{Architecture, Context, Error, Precision, Result};

mod resume_checks;
mod saved;
mod start;
mod steps;

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
    let start = start::start(ctx, &args, given)?;
    let arch = start
        .model
        .architecture()
        .ok_or_else(|| Error::InvalidArgument("the model is not one of the zoo's".into()))?;
    start::print_header(ctx, &arch, &start);
    steps::train(&args, start, &arch, ranks)
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
