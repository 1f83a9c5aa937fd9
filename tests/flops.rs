//! `hetconv flops` reproduces the paper's table to the digit. The expected numbers are the
//! paper's (and its PyTorch reproduction's), typed in from the paper, not from our code.

use std::process::Command;

use hetconv::flops::vgg_cost;
use hetconv::nn::VggConfig;

#[test]
fn flops_command_prints_the_papers_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .arg("flops")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
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
