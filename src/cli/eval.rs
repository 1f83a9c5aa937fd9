//! `hetconv eval`: loss, accuracy and confusion matrix of a checkpoint on a data set.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hetconv::checkpoint;
use hetconv::nn::ConvMode;
use hetconv::train::evaluate;
use hetconv::{Context, Result};

use super::data_args::DataArgs;

/// Which split to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Split {
    /// The test split.
    Test,
    /// The training split.
    Train,
}

/// Options of `hetconv eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The checkpoint (hetconv's or a PyTorch state_dict in safetensors).
    #[arg(long)]
    pub weights: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Split to evaluate.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    /// Only the first N images.
    #[arg(long, value_parser = super::args::at_least_one)]
    pub limit: Option<usize>,
    /// Images per batch.
    #[arg(long, default_value_t = 100, value_parser = super::args::at_least_one)]
    pub batch_size: usize,
    /// Normalise the model's input for a checkpoint that records no normalisation (a PyTorch
    /// file): `imagenet` or MEANS/STDS (one per channel); one that differs from the
    /// checkpoint's is refused.
    #[arg(long, value_parser = super::args::normalize)]
    pub normalize: Option<hetconv::data::Normalize>,
}

/// Runs the command.
pub fn run(ctx: &Context, args: EvalArgs) -> Result<()> {
    let mut ckpt = checkpoint::load(&args.weights)?;
    super::normalize_checkpoint(&mut ckpt, args.normalize.as_ref(), &args.weights)?;
    let model = ckpt
        .build_model(ctx, ConvMode::Fused)
        .map_err(|e| e.in_file(&args.weights))?;
    let splits = args.data.load(Some(model.input().size))?;
    let data = match args.split {
        Split::Test => splits.test,
        Split::Train => splits.train,
    };
    super::check_class_names(&ckpt, &data, &args.weights)?;
    let report = pollster::block_on(evaluate(&model, &data, args.batch_size.max(1), args.limit))?;
    println!("{}: {} images", data.name, report.images);
    println!(
        "loss {:.4}  accuracy {:.2}%",
        report.loss,
        100.0 * report.accuracy
    );
    println!("confusion matrix (rows: true class, columns: predicted):");
    for (row, name) in report.confusion.iter().zip(&data.class_names) {
        let cells: Vec<String> = row.iter().map(|n| format!("{n:>5}")).collect();
        println!("{name:>12} {}", cells.join(""));
    }
    Ok(())
}
