//! `hetconv flops`: the paper's FLOPs table, recomputed.

use hetconv::Result;
use hetconv::flops::{PAPER_TABLE, millions, vgg_cost};
use hetconv::nn::VggConfig;

/// Prints, for every P of the paper, our count next to the paper's.
pub fn run(base: &VggConfig) -> Result<()> {
    let paper_shape =
        base.widths == VggConfig::paper(1).widths && base.image_size == 32 && base.in_channels == 3;
    println!(
        "VGG-16 widths {:?}, {}x{}x{} input, {} classes",
        base.widths, base.image_size, base.image_size, base.in_channels, base.classes
    );
    println!(
        "| P | FLOPs (paper convention) | paper | MACs | MACs executed: PyTorch form | MACs executed: hetconv | params | params stored (masked zeros) | paper acc % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (p, paper_flops, paper_acc, _) in PAPER_TABLE {
        let config = VggConfig {
            parts: p,
            ..base.clone()
        };
        if config.validate().is_err() {
            println!("| {p} | (widths not divisible by P) | | | | | | | |");
            continue;
        }
        let cost = vgg_cost(&config);
        let ours = cost.paper_millions();
        let paper = if paper_shape {
            format!(
                "{paper_flops} {}",
                if ours == paper_flops {
                    "(equal)"
                } else {
                    "(DIFFERS)"
                }
            )
        } else {
            "-".into()
        };
        println!(
            "| {p} | {ours} | {paper} | {} | {} | {} | {:.3}M | {:.3}M | {} |",
            millions(cost.macs),
            millions(cost.macs_pytorch_form),
            millions(cost.macs_hetconv),
            cost.params as f64 / 1e6,
            cost.params_stored as f64 / 1e6,
            if paper_shape {
                format!("{paper_acc}")
            } else {
                "-".into()
            },
        );
    }
    Ok(())
}
