//! `hetconv export`: a checkpoint as a plain PyTorch state_dict in safetensors (no optimizer
//! state), loadable with `model.load_state_dict(safetensors.torch.load_file(path))`, or as an
//! ONNX model (opset 13) for ONNX Runtime, TensorRT, OpenVINO and the converters that take ONNX.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hetconv::checkpoint::{self, META_CLASSES, META_CONFIG, META_MODEL, META_STEP, StoredDtype};
use hetconv::onnx::OnnxOptions;
use hetconv::{Error, Result};

/// What `hetconv export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A PyTorch state_dict in safetensors.
    Safetensors,
    /// An ONNX model (opset 13).
    Onnx,
}

/// Options of `hetconv export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The checkpoint to export.
    #[arg(long)]
    pub weights: PathBuf,
    /// The file to write.
    #[arg(long)]
    pub output: PathBuf,
    /// What to write (default: onnx for an output ending in .onnx, else safetensors).
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// How to store the weights in safetensors: f32 (exact), or f16 (half the size, for
    /// inference; loads in either precision).
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: StoredDtype,
    /// ONNX: each HetConv layer as one dense 3x3 Conv (the 1x1 weights as centre taps) instead
    /// of a grouped 3x3 Conv + a 1x1 Conv + Add.
    #[arg(long)]
    pub fold_hetconv: bool,
    /// ONNX: each BatchNorm folded into the conv or linear layer before it.
    #[arg(long)]
    pub fold_batchnorm: bool,
    /// ONNX: put this input normalisation into the graph for a checkpoint that records none
    /// (a PyTorch file): `imagenet` or MEANS/STDS (one per channel); one that differs from the
    /// checkpoint's is refused.
    #[arg(long, value_parser = super::args::normalize)]
    pub normalize: Option<hetconv::data::Normalize>,
}

fn parse_dtype(s: &str) -> std::result::Result<StoredDtype, String> {
    s.parse()
}

/// Runs the command.
pub fn run(args: ExportArgs) -> Result<()> {
    // The export drops the optimizer state and progress (and f16 rounds the weights): never
    // in place of the checkpoint it reads.
    super::check_not_an_input(
        "--output",
        &args.output,
        &[("checkpoint (--weights)", &args.weights)],
    )?;
    super::check_writable(&args.output)?;
    let onnx = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let format = args.format.unwrap_or(if onnx {
        ExportFormat::Onnx
    } else {
        ExportFormat::Safetensors
    });
    let mut ckpt = checkpoint::load(&args.weights)?;
    if format == ExportFormat::Onnx {
        if args.dtype != StoredDtype::F32 {
            return Err(Error::InvalidArgument(
                "--dtype chooses how safetensors stores the weights; ONNX export writes f32".into(),
            ));
        }
        let options = OnnxOptions {
            fold_hetconv: args.fold_hetconv,
            fold_batchnorm: args.fold_batchnorm,
        };
        super::normalize_checkpoint(&mut ckpt, args.normalize.as_ref(), &args.weights)?;
        let bytes = hetconv::onnx::export(&ckpt, options)?;
        checkpoint::write_atomic(&args.output, &bytes)?;
        let normalised = ckpt
            .architecture
            .as_ref()
            .and_then(|a| a.normalize())
            .map(|n| format!(", normalised with {n} in the graph"));
        println!(
            "wrote {} (ONNX opset {}, {} bytes; input `input` [batch, C, H, W] {}, output `logits`)",
            args.output.display(),
            hetconv::onnx::OPSET,
            bytes.len(),
            normalised.map_or_else(
                || "as the weights take it (the checkpoint records no normalisation: pixels in [0, 1] for a hetconv run; for a PyTorch file, give --normalize)".to_string(),
                |n| format!("pixels in [0, 1]{n}")
            )
        );
        return Ok(());
    }
    if args.normalize.is_some() {
        return Err(Error::InvalidArgument(
            "--normalize puts the normalisation into an ONNX graph; a safetensors state_dict holds the weights alone".into(),
        ));
    }
    if args.fold_hetconv || args.fold_batchnorm {
        return Err(Error::InvalidArgument(
            "--fold-hetconv and --fold-batchnorm shape an ONNX graph; a safetensors state_dict keeps the layers as they are".into(),
        ));
    }
    ckpt.momentum.clear();
    ckpt.metadata = ckpt
        .metadata
        .into_iter()
        .filter(|(k, _)| [META_CONFIG, META_MODEL, META_CLASSES, META_STEP].contains(&k.as_str()))
        .collect::<HashMap<_, _>>();
    checkpoint::save_as(&args.output, &ckpt, args.dtype)?;
    println!(
        "wrote {} ({} tensors, {:?}, PyTorch state_dict names)",
        args.output.display(),
        ckpt.tensors.len(),
        args.dtype
    );
    Ok(())
}
