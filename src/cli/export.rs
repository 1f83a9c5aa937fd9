//! `hetconv export`: a checkpoint as a plain PyTorch state_dict in safetensors (no optimizer
//! state), loadable with `model.load_state_dict(safetensors.torch.load_file(path))`.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use hetconv::Result;
use hetconv::checkpoint::{self, META_CLASSES, META_CONFIG, META_MODEL, META_STEP, StoredDtype};

/// Options of `hetconv export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The checkpoint to export.
    #[arg(long)]
    pub weights: PathBuf,
    /// The safetensors file to write.
    #[arg(long)]
    pub output: PathBuf,
    /// How to store the weights: f32 (exact), or f16 (half the size, for inference; loads in
    /// either precision).
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: StoredDtype,
}

fn parse_dtype(s: &str) -> std::result::Result<StoredDtype, String> {
    s.parse()
}

/// Runs the command.
pub fn run(args: ExportArgs) -> Result<()> {
    let mut ckpt = checkpoint::load(&args.weights)?;
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
