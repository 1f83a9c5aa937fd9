//! Command-line parsing and the subcommands.

mod bench;
mod data_args;
mod eval;
mod export;
mod flops;
mod info;
mod predict;
mod report;
mod selfcheck;
mod train;

use clap::{Parser, Subcommand};

use hetconv::nn::VggConfig;
use hetconv::{Context, ContextOptions, ConvAlgorithm, LimitsChoice, Result};

/// Train and run HetConv (heterogeneous-kernel) CNNs on any GPU.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// Ask the device for every limit the adapter offers instead of the WebGPU defaults.
    #[arg(long, global = true)]
    max_limits: bool,
    /// How convolutions are computed: the fastest measured (auto: the direct loops, on the H200
    /// and on lavapipe alike), direct loops, or the tiled implicit GEMM.
    #[arg(long, global = true, value_enum, default_value_t = ConvArg::Auto)]
    conv: ConvArg,
    #[command(subcommand)]
    command: Command,
}

/// `--conv` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ConvArg {
    Auto,
    Direct,
    Tiled,
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
    /// Print FLOPs and parameter counts of the HetConv VGG-16 for P = 1..64 next to the paper's.
    Flops {
        /// Multiply every conv width by this factor.
        #[arg(long, default_value_t = 1.0)]
        width_mult: f64,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let options = ContextOptions {
        limits: if cli.max_limits {
            LimitsChoice::AdapterMaximum
        } else {
            LimitsChoice::WebGpuDefaults
        },
        conv_algorithm: match cli.conv {
            ConvArg::Auto => ConvAlgorithm::Auto,
            ConvArg::Direct => ConvAlgorithm::Direct,
            ConvArg::Tiled => ConvAlgorithm::TiledGemm,
        },
        ..Default::default()
    };
    let gpu = || pollster::block_on(Context::new(options.clone()));
    match cli.command {
        Command::Train(args) => train::run(&gpu()?, *args),
        Command::Eval(args) => eval::run(&gpu()?, args),
        Command::Predict(args) => predict::run(&gpu()?, args),
        Command::Export(args) => export::run(args),
        Command::Bench(args) => bench::run(&gpu()?, args),
        Command::Info => info::run(&gpu()?),
        Command::Selfcheck => selfcheck::run(&gpu()?),
        Command::Flops { width_mult } => {
            let mut config = VggConfig::paper(1);
            if width_mult != 1.0 {
                config = config.with_width_mult(width_mult);
            }
            flops::run(&config)
        }
    }
}
