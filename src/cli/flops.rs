//! `hetconv flops`: the paper's FLOPs table, recomputed.

use hetconv::Result;
use hetconv::flops::{PAPER_TABLE, millions, resnet_cost, vgg_cost};
use hetconv::nn::{ResNetConfig, ResNetLayout, VggConfig};

/// The paper's ResNet-50 figures: (P, FLOPs in G as printed). Its ResNet FLOPs are MACs.
const PAPER_RESNET50: [(usize, f64); 2] = [(1, 4.09), (4, 2.85)];

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

/// Whether a figure printed to 0.01 is `value` rounded or truncated, and which.
fn printed_as(value: f64, printed: f64) -> Option<&'static str> {
    let hundredths = (printed * 100.0).round();
    if (value * 100.0).round() == hundredths {
        Some("rounded")
    } else if (value * 100.0).floor() == hundredths {
        Some("truncated")
    } else {
        None
    }
}

/// Prints, for P = 1, 2, 4, 8, a ResNet's MACs (the paper's ResNet FLOPs) and parameters; for
/// ResNet-50 next to the paper's figures.
pub fn run_resnet(depth: usize) -> Result<()> {
    let base = match ResNetConfig::cifar(depth, 1).layout() {
        Some(ResNetLayout::ImageNet) => ResNetConfig::imagenet(depth, 1),
        _ => ResNetConfig::cifar(depth, 1),
    };
    base.validate()?;
    let full = resnet_cost(&base);
    println!(
        "HetConv {}: HetConv(P) on every 3x3 conv of the blocks (the strided ones too); stem, \
         1x1 convs and projection shortcuts standard; {}x{}x{} input, {} classes",
        base.name(),
        base.in_channels,
        base.image_size,
        base.image_size,
        base.classes
    );
    // ImageNet ResNets in G as the paper prints them, CIFAR ones in M.
    let (unit, scale) = match base.layout() {
        Some(ResNetLayout::ImageNet) => ("G", 1e9),
        _ => ("M", 1e6),
    };
    let short = |macs: u64| format!("{:.3}{unit}", macs as f64 / scale);
    println!(
        "| P | MACs (= the paper's ResNet FLOPs) | {unit}MACs | vs P = 1 | paper | MACs executed: PyTorch form | params | params stored (masked zeros) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for p in [1, 2, 4, 8] {
        let config = ResNetConfig {
            parts: p,
            ..base.clone()
        };
        if config.validate().is_err() {
            println!("| {p} | (widths not divisible by P) | | | | | | |");
            continue;
        }
        let cost = resnet_cost(&config);
        let g = cost.macs as f64 / 1e9;
        let paper = PAPER_RESNET50
            .iter()
            .find(|(pp, _)| depth == 50 && *pp == p)
            .map_or("-".to_string(), |&(_, printed)| {
                match printed_as(g, printed) {
                    Some(how) => format!("{printed:.2}G (ours {how})"),
                    None => format!("{printed:.2}G (DIFFERS)"),
                }
            });
        println!(
            "| {p} | {} | {} | {:+.1}% | {paper} | {} | {:.3}M | {:.3}M |",
            cost.macs,
            short(cost.macs),
            100.0 * (cost.macs as f64 / full.macs as f64 - 1.0),
            short(cost.macs_pytorch_form),
            cost.params as f64 / 1e6,
            cost.params_stored as f64 / 1e6,
        );
    }
    Ok(())
}
