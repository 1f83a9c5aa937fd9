//! Command-line parsing and the subcommands.

mod info;
mod selfcheck;

use clap::{Parser, Subcommand};

use hetconv::{Context, ContextOptions, LimitsChoice, Result};

/// Train and run HetConv (heterogeneous-kernel) CNNs on any GPU.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// Ask the device for every limit the adapter offers instead of the WebGPU defaults.
    #[arg(long, global = true)]
    max_limits: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the GPU adapter, backend, driver, features and the limits that matter to hetconv.
    Info,
    /// Run every kernel family once on small shapes and compare with the CPU reference.
    Selfcheck,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let options = ContextOptions {
        limits: if cli.max_limits {
            LimitsChoice::AdapterMaximum
        } else {
            LimitsChoice::WebGpuDefaults
        },
        ..Default::default()
    };
    let ctx = pollster::block_on(Context::new(options))?;
    match cli.command {
        Command::Info => info::run(&ctx),
        Command::Selfcheck => selfcheck::run(&ctx),
    }
}
