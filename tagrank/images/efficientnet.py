"""EfficientNet-Lite (Tan & Le 2019, TensorFlow's "lite" variant), built from its weights alone.

Lite differs from EfficientNet-B* in ways that keep it small: ReLU6 instead of swish, no
squeeze-and-excitation, a fixed 32-channel stem and 1280-channel head. TensorFlow's "SAME" padding
is kept (asymmetric where a convolution has stride 2), and batch norms use TF's eps of 1e-3.

The architecture is read off the weight shapes (kernel sizes, widths, repeats; a stage ends where the
block width changes), so Lite0 and Lite2 need no table beyond the stride of each stage. Module and
parameter names are timm's (``tf_efficientnet_lite*``): its state dicts load unchanged, and the tests
check that both give the same features. This replaces ``timm.create_model`` at start-up, which
imports torchvision and torch._dynamo (about two seconds of every ``tagrank rank``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
"""Stride of the first block of each of the seven stages (the others have stride 1)."""

BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """Convolution with TensorFlow's "SAME" padding for any input size: pad so out = ceil(in / stride)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        # plain ints: a traced export (tagrank.images.runtimes) then records the pads as constants, right for
        # every input whose sides are multiples of the network's stride, instead of mixing constants and sizes
        sizes = [int(size) for size in x.shape[-2:]]
        for size, kernel, stride in zip(reversed(sizes), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A bias-free convolution padded as TF's "SAME" (static and symmetric where stride 1 allows it)."""
    if stride == 1:
        return nn.Conv2d(in_ch, out_ch, kernel, 1, kernel // 2, groups=groups, bias=False)
    return SameConv2d(in_ch, out_ch, kernel, stride, 0, groups=groups, bias=False)


class BatchNormAct(nn.BatchNorm2d):
    """Batch norm followed by ReLU6 (or nothing, on the linear projections)."""

    def __init__(self, channels: int, act: bool = True):
        super().__init__(channels, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class DepthwiseSeparable(nn.Module):
    """First stage: depthwise k×k, then a linear 1×1 projection."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int):
        super().__init__()
        self.conv_dw = conv(in_ch, in_ch, kernel, stride, groups=in_ch)
        self.bn1 = BatchNormAct(in_ch)
        self.conv_pw = conv(in_ch, out_ch, 1)
        self.bn2 = BatchNormAct(out_ch, act=False)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return out + x if self.skip else out


class InvertedResidual(nn.Module):
    """MBConv: 1×1 expansion, depthwise k×k, linear 1×1 projection; residual when the shape is kept."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, kernel: int, stride: int):
        super().__init__()
        self.conv_pw = conv(in_ch, mid_ch, 1)
        self.bn1 = BatchNormAct(mid_ch)
        self.conv_dw = conv(mid_ch, mid_ch, kernel, stride, groups=mid_ch)
        self.bn2 = BatchNormAct(mid_ch)
        self.conv_pwl = conv(mid_ch, out_ch, 1)
        self.bn3 = BatchNormAct(out_ch, act=False)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv_pwl(self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))))
        return out + x if self.skip else out


class EfficientNetLite(nn.Module):
    """Stem, seven stages of blocks, 1×1 head, average pooling, ImageNet-1k classifier.

    ``stages``: per stage, per block ``(in, mid, out, kernel, expand)``; a block without expansion is
    depthwise-separable (the first stage).
    """

    def __init__(self, stem: int, stages: list[list[tuple[int, int, int, int, bool]]], head: int, classes: int):
        super().__init__()
        self.conv_stem = conv(3, stem, 3, 2)
        self.bn1 = BatchNormAct(stem)
        stage_modules = []
        for j, stage in enumerate(stages):
            layers = []
            for b, (in_ch, mid, out, kernel, expand) in enumerate(stage):
                stride = STAGE_STRIDES[j] if b == 0 else 1
                layers.append(InvertedResidual(in_ch, mid, out, kernel, stride) if expand
                              else DepthwiseSeparable(in_ch, out, kernel, stride))
            stage_modules.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*stage_modules)
        self.conv_head = conv(stages[-1][-1][2], head, 1)
        self.bn2 = BatchNormAct(head)
        self.classifier = nn.Linear(head, classes)
        self.num_features = head

    @classmethod
    def from_weights(cls, weights: dict[str, torch.Tensor]) -> "EfficientNetLite":
        """The network whose shapes are those of ``weights`` (EfficientNet-PyTorch names: ``_blocks.N.*``)."""
        blocks = sorted({int(name.split(".")[1]) for name in weights if name.startswith("_blocks.")})
        stages: list[list[tuple[int, int, int, int, bool]]] = []
        for n in blocks:
            prefix = f"_blocks.{n}."
            depthwise = weights[prefix + "_depthwise_conv.weight"]
            expand = prefix + "_expand_conv.weight" in weights
            mid, kernel = depthwise.shape[0], depthwise.shape[-1]
            in_ch = weights[prefix + "_expand_conv.weight"].shape[1] if expand else mid
            out = weights[prefix + "_project_conv.weight"].shape[0]
            if not stages or stages[-1][-1][2] != out:
                stages.append([])
            stages[-1].append((in_ch, mid, out, kernel, expand))
        if len(stages) != len(STAGE_STRIDES):
            raise ValueError(f"expected {len(STAGE_STRIDES)} stages of blocks, the weights have {len(stages)}")
        return cls(weights["_conv_stem.weight"].shape[0], stages, weights["_conv_head.weight"].shape[0],
                   weights["_fc.weight"].shape[0])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        return pooled if pre_logits else self.classifier(pooled)

    def get_classifier(self) -> nn.Linear:
        return self.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
