#!/usr/bin/env python3
"""Loads a state_dict exported by `hetconv export` into a PyTorch model definition written
independently of hetconv, runs it (eval mode, float64) on a batch of images and prints the
logits as JSON: the PyTorch direction of hetconv's checkpoints.

    torch_logits.py WEIGHTS.safetensors IMAGES.f32 N C H W MODEL

MODEL is one of
    vgg16:P:W1,W2,...,W13   the paper's HetConv VGG-16 as the PyTorch reproduction writes it
                            (bench/pytorch_one_step.py: grouped 3x3 + masked dense 1x1)
    resnet18                torchvision's resnet18 (P = 1: plain convs), 10 classes
    cifar-resnet:DEPTH:P    He et al.'s CIFAR ResNet (16/32/64 channels, option-B projection
                            shortcuts) with the reproduction's HetConv on every block 3x3 conv
IMAGES.f32 holds N x C x H x W little-endian f32 pixels. The state_dict is loaded with
strict=True: a missing, extra or misshapen tensor fails.
"""
import json
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from pytorch_one_step import VGG, HetConv  # noqa: E402


class StridedHetConv(HetConv):
    """The reproduction's HetConv with both parts strided (the paper's per-filter definition)."""

    def __init__(self, cin, cout, p, stride):
        super().__init__(cin, cout, p)
        self.gwc.stride = (stride, stride)
        self.pwc.stride = (stride, stride)


def conv3x3(cin, cout, p, stride):
    if p == 1:
        return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
    return StridedHetConv(cin, cout, p, stride)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, p, stride):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, p, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv3x3(cout, cout, p, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


class CifarResNet(nn.Module):
    def __init__(self, depth, p, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for stage, width in enumerate((16, 32, 64), start=1):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, width, p, 2 if b == 0 and stage > 1 else 1))
                cin = width
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(x.mean(dim=(2, 3)), 1))


def build(spec):
    kind, *args = spec.split(":")
    if kind == "vgg16":
        return VGG([int(w) for w in args[1].split(",")], int(args[0]))
    if kind == "resnet18":
        import torchvision

        return torchvision.models.resnet18(num_classes=10)
    if kind == "cifar-resnet":
        return CifarResNet(int(args[0]), int(args[1]))
    raise SystemExit(f"unknown model {spec!r}")


def main() -> None:
    weights, images = sys.argv[1], sys.argv[2]
    shape = tuple(int(v) for v in sys.argv[3:7])
    model = build(sys.argv[7]).double().eval()
    state = load_file(weights)
    model.load_state_dict({k: (v.double() if v.is_floating_point() else v) for k, v in state.items()}, strict=True)
    with open(images, "rb") as f:
        x = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(shape).double()
    with torch.no_grad():
        logits = model(x)
    print(json.dumps({"logits": logits.tolist(), "tensors": len(state)}))


if __name__ == "__main__":
    main()
