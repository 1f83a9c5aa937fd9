#!/usr/bin/env python3
"""PyTorch peer for `hetconv bench`: the same workload (HetConv VGG-16 for CIFAR-10, SGD momentum
0.9, weight decay 5e-4, random data, warm-up steps excluded), written as the PyTorch
reproduction computes HetConv: a grouped 3x3 conv plus a dense 1x1 conv whose block diagonal is
masked (weights zeroed, gradients masked by a hook), in three kinds of math: fp32 (TF32 off), PyTorch's default on NVIDIA (cuDNN
TF32 on) and automatic mixed precision (f16 autocast with a GradScaler: the peer of `hetconv
--precision mixed`). Prints a Markdown table and writes JSON.

    python3 bench/pytorch_step.py --out bench-results/pytorch.json
"""
import argparse
import json
import time

import torch
import torch.nn as nn

from pytorch_one_step import VGG

WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def vgg(p):
    return VGG(WIDTHS, p)


# The kinds of math timed: name, TF32 allowed, f16 autocast with loss scaling.
MATH = [("fp32", False, False), ("TF32", True, False), ("AMP f16", True, True)]


def time_step(model, batch, warmup, steps, device, amp):
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.arange(batch, device=device) % 10
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(device, enabled=amp)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.float16, enabled=amp):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    step_ms = (time.perf_counter() - start) * 1e3 / steps
    model.eval()
    with torch.no_grad(), torch.autocast(device, dtype=torch.float16, enabled=amp):
        for _ in range(warmup):
            model(x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
        torch.cuda.synchronize()
    model.train()
    return step_ms, (time.perf_counter() - start) * 1e3 / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", default="16,128")
    ap.add_argument("--parts", default="1,4,16")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default="bench-results/pytorch.json")
    args = ap.parse_args()
    device = "cuda"
    rows = []
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()} (cudnn.benchmark on)\n")
    print("| batch | P | math | step ms | forward ms | images/s |\n|---|---|---|---|---|---|", flush=True)
    for math, tf32, amp in MATH:
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
        for batch in map(int, args.batch.split(",")):
            for p in map(int, args.parts.split(",")):
                torch.manual_seed(0)
                model = vgg(p).to(device)
                # GradScaler starts at 2^16 and skips the SGD update of a step that overflows
                # while it halves the scale: those cheaper steps are left in the warm-up.
                warmup = max(args.warmup, 20) if amp else args.warmup
                step_ms, fwd_ms = time_step(model, batch, warmup, args.steps, device, amp)
                r = {"batch": batch, "parts": p, "math": math, "tf32": tf32, "amp": amp, "step_ms": step_ms, "forward_ms": fwd_ms,
                     "images_per_second": batch / (step_ms / 1e3)}
                rows.append(r)
                # Each row as soon as it is measured: a run cut short keeps what it measured.
                print(f"| {r['batch']} | {r['parts']} | {r['math']} | {r['step_ms']:.2f} | {r['forward_ms']:.2f} | {r['images_per_second']:.0f} |", flush=True)
                with open(args.out, "w") as f:
                    json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
