//! Command-line parsing and the subcommands.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set on the ranks other than 0 of a data-parallel run: only rank 0 prints.
static QUIET: AtomicBool = AtomicBool::new(false);

/// `println!`, except on the quiet ranks of a data-parallel run.
macro_rules! say {
    ($($arg:tt)*) => {
        if !$crate::cli::is_quiet() {
            println!($($arg)*);
        }
    };
}

/// Whether this process prints nothing (a rank other than 0 of a data-parallel run).
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Makes this process print nothing (or print again).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

mod args;
mod bench;
mod data_args;
mod epoch_end;
mod eval;
mod export;
mod flops;
mod info;
mod predict;
mod report;
mod run_folder;
mod selfcheck;
mod train;
mod tune;
mod versus_direct;

use clap::{Parser, Subcommand};

use hetconv::nn::{PAPER_WIDTHS, VggConfig};
use hetconv::tune::TuneMode;
use hetconv::{Context, ContextOptions, ConvAlgorithm, LimitsChoice, Precision, Result};

/// Train and run HetConv (heterogeneous-kernel) CNNs on any GPU.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// Ask the device for every limit the adapter offers instead of the WebGPU defaults.
    #[arg(long, global = true)]
    max_limits: bool,
    /// How convs and linear layers are computed: auto (the tuner decides per pass and shape),
    /// direct (the direct kernels), tiled (the GEMM core with the heuristic's tile shapes), or
    /// one variant everywhere, e.g. gemm:64x64/4x4/k16 (splitk:64x64/4x4/k16: with a split
    /// reduction).
    #[arg(long, global = true, default_value = "auto", value_parser = parse_conv)]
    conv: ConvAlgorithm,
    /// How much the tuner may do: off (heuristic only), cached (cache entries, else the
    /// heuristic) or full (time the candidates of each new shape and cache the winner). Default:
    /// $HETCONV_TUNE, else full on GPUs and cached on software adapters.
    #[arg(long, global = true, value_parser = parse_tune)]
    tune: Option<TuneMode>,
    /// The tune cache file. Default: $HETCONV_TUNE_CACHE, else one file per adapter and driver
    /// in the platform's cache folder (~/.cache/hetconv on Linux).
    #[arg(long, global = true)]
    tune_cache: Option<std::path::PathBuf>,
    /// The precision of the convs' and linear layers' products: f32, or mixed (f16 operands
    /// with f32 sums, on tensor cores where the adapter has cooperative matrices, and f16
    /// activations between layers; training keeps f32 weights and scales the loss dynamically). Needs shader-f16 for mixed. A
    /// resumed run keeps the precision (and the loss scale) it was saved with.
    #[arg(long, global = true, default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
    /// Under an MPI launcher, open the adapter whose index is this process's local rank (the
    /// host's GPUs first, modulo their count), so that the ranks on one host take different
    /// GPUs.
    #[arg(long, global = true)]
    adapter_per_rank: bool,
    #[command(subcommand)]
    command: Command,
}

fn parse_conv(s: &str) -> std::result::Result<ConvAlgorithm, String> {
    s.parse()
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    s.parse()
}

fn parse_tune(s: &str) -> std::result::Result<TuneMode, String> {
    s.parse()
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a HetConv VGG-16 (on the embedded Fashion-MNIST subset unless --data is given).
    Train(Box<train::TrainArgs>),
    /// Loss, accuracy and confusion matrix of a checkpoint on a data set.
    Eval(eval::EvalArgs),
    /// Classify images (files or a data set split); CSV or JSON output.
    Predict(predict::PredictArgs),
    /// Write a checkpoint as a plain PyTorch state_dict (safetensors).
    Export(export::ExportArgs),
    /// Time the whole training step for batch sizes and parts P (Markdown + JSON).
    Bench(bench::BenchArgs),
    /// Print the GPU adapter, backend, driver, features and the limits that matter to hetconv.
    Info,
    /// Run every kernel family once on small shapes and compare with the CPU reference.
    Selfcheck,
    /// Time the kernel variants of the VGG-16's passes on this adapter ahead of training and
    /// store the winners in the tune cache.
    Tune(tune::TuneArgs),
    /// Print FLOPs and parameter counts of a model for each P next to the paper's: the VGG-16
    /// for P = 1..64, a ResNet for P = 1, 2, 4, 8.
    Flops {
        /// The network: vgg16, resnet18/34/50/101/152 (ImageNet) or resnet20/32/44/56/110 (CIFAR).
        #[arg(long, default_value = "vgg16", value_parser = args::model_name)]
        model: args::ModelName,
        /// Multiply every conv width by this factor.
        #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = args::width_mult)]
        width_mult: f64,
    },
}

/// The flags given on the command line (not left to their defaults), by clap id (`lr`,
/// `train_limit`, ...), at the top level and in the subcommand.
pub fn given_flags(matches: &clap::ArgMatches) -> std::collections::BTreeSet<String> {
    let mut given = std::collections::BTreeSet::new();
    let mut collect = |m: &clap::ArgMatches| {
        for id in m.ids() {
            if m.try_get_raw(id.as_str()).is_ok()
                && m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
            {
                given.insert(id.to_string());
            }
        }
    };
    collect(matches);
    if let Some((_, sub)) = matches.subcommand() {
        collect(sub);
    }
    given
}

/// Runs the parsed command; `given` names the flags given on the command line.
pub fn run(cli: Cli, given: &std::collections::BTreeSet<String>) -> Result<()> {
    let options = ContextOptions {
        limits: if cli.max_limits {
            LimitsChoice::AdapterMaximum
        } else {
            LimitsChoice::WebGpuDefaults
        },
        conv_algorithm: cli.conv,
        tune: cli.tune,
        tune_cache: cli.tune_cache.clone(),
        precision: cli.precision,
        adapter_index: match (cli.adapter_per_rank, hetconv::dist::local_rank_from_env()) {
            (false, _) => None,
            (true, Some(rank)) => Some(rank),
            (true, None) => {
                return Err(hetconv::Error::InvalidArgument(
                    "--adapter-per-rank: no local rank in the environment (start the command with mpirun or srun)".into(),
                ));
            }
        },
        ..Default::default()
    };
    let gpu = || pollster::block_on(Context::new(options.clone()));
    match cli.command {
        Command::Train(args) => train::run(&gpu()?, *args, given),
        Command::Eval(args) => eval::run(&gpu()?, args),
        Command::Predict(args) => predict::run(&gpu()?, args),
        Command::Export(args) => export::run(args),
        Command::Bench(args) => bench::run(&gpu()?, args),
        Command::Info => info::run(&gpu()?),
        Command::Selfcheck => selfcheck::run(&gpu()?),
        Command::Tune(args) => tune::run(&gpu()?, args),
        Command::Flops { model, width_mult } => match model {
            args::ModelName::Vgg16 => {
                let mut config = VggConfig::paper(1);
                if width_mult != 1.0 {
                    config = config.with_width_mult(width_mult);
                }
                flops::run(&config)
            }
            args::ModelName::ResNet(depth) if width_mult == 1.0 => flops::run_resnet(depth),
            args::ModelName::ResNet(_) => Err(hetconv::Error::InvalidArgument(
                "--width-mult scales the VGG-16's widths; a ResNet has its paper widths".into(),
            )),
        },
    }
}

/// Gives the checkpoint's model the input normalisation `given` (`--normalize`) if it has none
/// (a PyTorch file records none); one that differs from the checkpoint's is refused.
fn normalize_checkpoint(
    checkpoint: &mut hetconv::checkpoint::Checkpoint,
    given: Option<&hetconv::data::Normalize>,
    path: &std::path::Path,
) -> hetconv::Result<()> {
    let (Some(given), Some(arch)) = (given, checkpoint.architecture.as_ref()) else {
        return Ok(());
    };
    if let Some(own) = arch.normalize().filter(|own| *own != given) {
        return Err(hetconv::Error::InvalidArgument(format!(
            "--normalize {given:?}: the model of {} normalises its input with {own:?}; leave --normalize out",
            path.display()
        )));
    }
    checkpoint.architecture = Some(arch.clone().with_normalize(Some(given.clone())));
    Ok(())
}

/// A checkpoint that recorded its training data's class names refuses data whose classes are
/// others (or in another order): every label would silently mean another class.
fn check_class_names(
    checkpoint: &hetconv::checkpoint::Checkpoint,
    data: &hetconv::data::Dataset,
    path: &std::path::Path,
) -> hetconv::Result<()> {
    match checkpoint.class_names() {
        Some(names) if names != data.class_names => Err(hetconv::Error::InvalidArgument(format!(
            "{} was trained on the classes {:?}; {} has {:?}",
            path.display(),
            names,
            data.name,
            data.class_names
        ))),
        _ => Ok(()),
    }
}

/// The paper's VGG-16 at P = `part`, its widths scaled by `mult` where given (rounded to
/// multiples of P). A P larger than a scaled width is refused, naming `part_flag`: that width
/// would be raised to P, silently growing the model (and misnaming it in a table).
fn scaled_vgg(part_flag: &str, part: usize, mult: Option<f64>) -> Result<VggConfig> {
    let config = VggConfig::paper(part);
    let Some(mult) = mult else {
        return Ok(config);
    };
    if let Some(&w) = PAPER_WIDTHS
        .iter()
        .find(|&&w| (w as f64 * mult) < part as f64)
    {
        return Err(hetconv::Error::InvalidArgument(format!(
            "{part_flag} {part}: a layer of the paper's {w} channels has {} at width x{mult}, fewer than P; lower {part_flag} or raise --width-mult",
            w as f64 * mult
        )));
    }
    Ok(config.with_width_mult(mult))
}

/// Refuses an output file that is one of the command's inputs (`inputs`: each with its flag):
/// writing it would destroy what the command reads. Paths are compared after resolving links
/// and `..`; an output that does not exist yet is no input.
fn check_not_an_input(
    output_flag: &str,
    output: &std::path::Path,
    inputs: &[(&str, &std::path::Path)],
) -> Result<()> {
    let Ok(target) = std::fs::canonicalize(output) else {
        return Ok(());
    };
    match inputs
        .iter()
        .find(|(_, input)| std::fs::canonicalize(input).is_ok_and(|i| i == target))
    {
        Some((flag, _)) => Err(hetconv::Error::InvalidArgument(format!(
            "{output_flag} {} is the {flag} this command reads: name another file",
            output.display()
        ))),
        None => Ok(()),
    }
}

/// Checks, before any work, that `path` can be written: its folder is made if missing and a
/// file can be opened there (an existing file is opened for appending, never truncated; a new
/// one is removed again). A folder is refused. The error names the path.
fn check_writable(path: &std::path::Path) -> Result<()> {
    let io = |source| hetconv::Error::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(io(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a folder; give a file name",
        ))),
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(io),
        Err(_) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            std::fs::File::create_new(path).map_err(io)?;
            std::fs::remove_file(path).map_err(io)
        }
    }
}
