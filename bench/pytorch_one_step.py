#!/usr/bin/env python3
"""Checks one hetconv training step against PyTorch.

Inputs (made by the hetconv CLI): INIT, a checkpoint exported with `hetconv export` (a plain
PyTorch state_dict in safetensors), AFTER, the export of the checkpoint that
`hetconv train --init INIT --max-steps 1 --no-augment --no-shuffle --schedule constant` wrote, and
the CIFAR-10 binary file it trained on. This script loads INIT into the paper's HetConv VGG-16
written in PyTorch (grouped 3x3 + masked 1x1, the reproduction's form), takes the same SGD step
(lr, momentum 0.9, weight decay 5e-4, batch = the file's first images, pixels / 255) in float64,
and prints, per tensor, how far hetconv's result is from PyTorch's.

    python3 bench/pytorch_one_step.py INIT AFTER CIFAR_BIN --widths 8,8,16,... --part 2 --batch 8
"""
import argparse

import torch
import torch.nn as nn
from safetensors.torch import load_file

POOL_AFTER = {2, 4, 7, 10, 13}


class HetConv(nn.Module):
    """The PyTorch reproduction's HetConv: grouped 3x3 + dense 1x1 whose own block is masked."""

    def __init__(self, cin, cout, p):
        super().__init__()
        self.gwc = nn.Conv2d(cin, cout, 3, padding=1, groups=p, bias=False)
        self.pwc = nn.Conv2d(cin, cout, 1, bias=False)
        mask = torch.ones(cout, cin, 1, 1)
        for o in range(cout):
            g = o // (cout // p)
            mask[o, g * (cin // p):(g + 1) * (cin // p)] = 0
        self.register_buffer("mask", mask, persistent=False)
        with torch.no_grad():
            self.pwc.weight.mul_(mask)
        self.pwc.weight.register_hook(lambda grad: grad * self.mask)

    def forward(self, x):
        return self.gwc(x) + self.pwc(x)


class VGG(nn.Module):
    """The paper's VGG-16 for CIFAR-10 with state_dict names features.* and classifier.*."""

    def __init__(self, widths, p, cin=3, classes=10):
        super().__init__()
        layers = []
        for i, w in enumerate(widths, start=1):
            conv = nn.Conv2d(cin, w, 3, padding=1) if i == 1 else HetConv(cin, w, p)
            layers += [conv, nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if i in POOL_AFTER:
                layers.append(nn.MaxPool2d(2, 2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(cin, cin), nn.BatchNorm1d(cin), nn.ReLU(inplace=True), nn.Linear(cin, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("init")
    ap.add_argument("after")
    ap.add_argument("cifar")
    ap.add_argument("--widths", required=True)
    ap.add_argument("--part", type=int, required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.1)
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    raw = open(args.cifar, "rb").read()
    records = [raw[i * 3073:(i + 1) * 3073] for i in range(args.batch)]
    x = torch.tensor([list(r[1:]) for r in records], dtype=torch.float64).reshape(args.batch, 3, 32, 32) / 255.0
    y = torch.tensor([r[0] for r in records])

    init = load_file(args.init)
    model = VGG(widths, args.part).double()
    model.load_state_dict({k: (v.double() if v.is_floating_point() else v) for k, v in init.items()}, strict=True)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    theirs = model.state_dict()
    ours = load_file(args.after)
    print(f"PyTorch {torch.__version__}, float64; loss before the step {loss.item():.6f}")
    print("| tensor | max abs(hetconv - PyTorch) | max abs(PyTorch step) | ratio |")
    print("|---|---|---|---|")
    worst = 0.0
    for name, want in theirs.items():
        if name.endswith("num_batches_tracked"):
            continue  # hetconv counts the steps of its own run, PyTorch all steps seen
        got = ours[name].double()
        err = (got - want).abs().max().item()
        moved = (want - init[name].double()).abs().max().item()
        ratio = err / max(moved, 1e-12)
        worst = max(worst, ratio if moved > 1e-7 else 0.0)
        print(f"| {name} | {err:.3e} | {moved:.3e} | {ratio:.2e} |")
    print(f"\nworst error relative to the size of the step: {worst:.2e}")


if __name__ == "__main__":
    main()
