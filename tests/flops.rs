//! `hetconv flops` reproduces the paper's table to the digit. The expected numbers are the
//! paper's (and its PyTorch reproduction's), typed in from the paper, not from our code.

use std::process::Command;

use hetconv::flops::vgg_cost;
use hetconv::nn::VggConfig;

/// `hetconv ARGS`: its standard output, the command having succeeded.
fn flops_table(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn flops_command_prints_the_papers_table() {
    let text = flops_table(&["flops"]);
    let paper = [
        "313.74M", "175.23M", "105.98M", "71.35M", "54.04M", "45.38M", "41.05M",
    ];
    for (row, flops) in text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| P"))
        .zip(paper)
    {
        assert!(
            row.contains(&format!("{flops} | {flops} (equal)")),
            "row {row:?} should show {flops} twice"
        );
    }
    assert_eq!(text.matches("(equal)").count(), 7, "{text}");
    assert!(!text.contains("DIFFERS"));
}

#[test]
fn macs_and_parameter_counts_match_the_paper() {
    // (P, pure MACs, MACs executed by the PyTorch form, parameters without masked zeros)
    let paper = [
        (1, "313.46M", "348.07M", "14.988M"),
        (2, "175.05M", "192.35M", "8.451M"),
        (4, "105.85M", "114.50M", "5.182M"),
        (8, "71.24M", "75.57M", "3.548M"),
        (16, "53.94M", "56.10M", "2.731M"),
        (32, "45.29M", "46.37M", "2.322M"),
        (64, "40.97M", "41.51M", "2.118M"),
    ];
    for (p, macs, executed, params) in paper {
        let cost = vgg_cost(&VggConfig::paper(p));
        assert_eq!(hetconv::flops::millions(cost.macs), macs, "P={p} MACs");
        assert_eq!(
            hetconv::flops::millions(cost.macs_pytorch_form),
            executed,
            "P={p} executed MACs"
        );
        assert_eq!(
            format!("{:.3}M", cost.params as f64 / 1e6),
            params,
            "P={p} params"
        );
        assert!(cost.params_stored > cost.params || p == 64 && cost.params_stored >= cost.params);
    }
}

/// The ResNets' counts against published figures, typed in: torchvision's parameter counts
/// (resnet18 11,689,512; resnet34 21,797,672; resnet50 25,557,032) and GFLOPS (1.81, 3.66,
/// 4.09), the paper's HetConv ResNet-50 at P = 4 (2.85 G, printed truncated as its VGG table),
/// the "about 1.31 G" for ResNet-34 at P = 4, and He et al.'s 0.27M parameters of the
/// CIFAR ResNet-20.
#[test]
fn resnet_counts_match_torchvision_and_the_paper() {
    use hetconv::flops::resnet_cost;
    use hetconv::nn::ResNetConfig;
    let g = |macs: u64| macs as f64 / 1e9;
    for (depth, params, gflops) in [
        (18, 11_689_512, 1.81),
        (34, 21_797_672, 3.66),
        (50, 25_557_032, 4.09),
    ] {
        let cost = resnet_cost(&ResNetConfig::imagenet(depth, 1));
        assert_eq!(cost.params, params, "resnet{depth} parameters");
        assert_eq!(
            format!("{:.2}", g(cost.macs)),
            format!("{gflops:.2}"),
            "resnet{depth} GMACs"
        );
    }
    let p4 = resnet_cost(&ResNetConfig::imagenet(50, 4));
    assert_eq!(
        (g(p4.macs) * 100.0).floor() / 100.0,
        2.85,
        "resnet50 P=4: {}",
        p4.macs
    );
    let r34 = resnet_cost(&ResNetConfig::imagenet(34, 4));
    assert!(
        (g(r34.macs) - 1.31).abs() < 0.01,
        "resnet34 P=4: {}",
        r34.macs
    );
    let r20 = resnet_cost(&ResNetConfig::cifar(20, 1));
    assert_eq!(format!("{:.2}", r20.params as f64 / 1e6), "0.27");
    // At P = 1 the blocks' 3x3 convs are torchvision's standard convs: nothing is masked.
    let r50 = resnet_cost(&ResNetConfig::imagenet(50, 1));
    assert_eq!(r50.macs_hetconv, r50.macs);
    assert_eq!(r50.params_stored, r50.params);
    assert_eq!(r50.params, 25_557_032);
    // At P > 1 HetConv skips the own block of the 1x1 weight, which is stored (as zeros).
    assert_eq!(p4.macs_hetconv, p4.macs);
    assert!(p4.params_stored > p4.params);
}

#[test]
fn flops_command_prints_resnet_rows_next_to_the_papers() {
    let text = flops_table(&["flops", "--model", "resnet50"]);
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| P"))
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(
        rows[0].starts_with("| 1 |") && rows[0].contains("4.09G (ours rounded)"),
        "{}",
        rows[0]
    );
    assert!(
        rows[2].starts_with("| 4 |") && rows[2].contains("2.85G (ours truncated)"),
        "{}",
        rows[2]
    );
    assert!(!text.contains("DIFFERS"), "{text}");
    let bad = Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .args(["flops", "--model", "resnet21"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("resnet21"));
}
