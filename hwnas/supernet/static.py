"""Static (plain PyTorch) MobileNetV3 networks built from a list of :class:`LayerSpec`.

The module names follow Once-for-All's static subnet (``get_active_subnet``):
``first_conv``, ``blocks.N.conv.{inverted_bottleneck,depth_conv,point_linear}``,
``final_expand_layer``, ``feature_mix_layer``, ``classifier.linear`` with
blocks renumbered consecutively, so an extracted subnet's ``state_dict`` has
OFA's key layout. The same builders make the standalone single-layer models that
the profiler measures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.errors import ArchError

from hwnas.supernet.spaces import LayerSpec, SearchSpace

BN_MOMENTUM = 0.1
BN_EPS = 1e-5


def make_act(name: str) -> nn.Module | None:
    """``None`` for no activation (an ``nn.Identity`` would leave Identity nodes in the ONNX graph)."""
    if name == "relu":
        return nn.ReLU(inplace=False)
    if name == "h_swish":
        return nn.Hardswish()
    if name in ("", "none", None):
        return None
    raise ArchError(f"Unknown activation {name!r}; the block family uses relu and h_swish.")


def init_weights(module: nn.Module) -> None:
    """OFA's initialisation: He-normal (fan-out) convs, BN weight 1 / bias 0, linear
    U(±1/sqrt(fan_in)) with zero bias; kernel-transform matrices stay identity."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / m.weight.shape[1] ** 0.5
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


class ConvBNAct(nn.Module):
    """conv (no bias) → BN → activation; ``groups`` = channels for depthwise."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str = "",
                 bn: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM) if bn else None
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x) if self.act is not None else x


class SqueezeExcite(nn.Module):
    """SE with OFA's module names (``fc.reduce``/``fc.expand``); reduce is always ReLU, gate is h_sigmoid.

    ``elastic``: inside the super-network the active channels are the input's first ``c`` and the
    squeezed width is the space's ``se_channels(c)``, so the weights are sliced per forward; a
    static subnet's SE runs its own (already sliced) convolutions.
    """

    def __init__(self, channels: int, mid: int, elastic: bool = False) -> None:
        super().__init__()
        self.fc = nn.Module()
        self.fc.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.fc.expand = nn.Conv2d(mid, channels, 1, bias=True)
        self.elastic = elastic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3), keepdim=True)
        if not self.elastic:
            return x * F.hardsigmoid(self.fc.expand(F.relu(self.fc.reduce(y))))
        c = x.shape[1]
        m = SearchSpace.se_channels(c)
        y = F.relu(F.conv2d(y, self.fc.reduce.weight[:m, :c], self.fc.reduce.bias[:m]))
        return x * F.hardsigmoid(F.conv2d(y, self.fc.expand.weight[:c, :m], self.fc.expand.bias[:c]))


class DepthConv(ConvBNAct):
    """Depthwise conv → BN → act → optional SE (OFA keeps SE inside ``depth_conv``)."""

    def __init__(self, ch: int, k: int, stride: int, act: str, se_mid: int) -> None:
        super().__init__(ch, ch, k, stride, groups=ch, act=act)
        self.se = SqueezeExcite(ch, se_mid) if se_mid else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return self.se(x) if self.se is not None else x


class MBConv(nn.Module):
    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        s = spec
        self.inverted_bottleneck = ConvBNAct(s.in_ch, s.mid_ch, 1, act=s.act) if s.expand != 1 else None
        self.depth_conv = DepthConv(s.mid_ch, s.kernel, s.stride, s.act, s.se_mid if s.se else 0)
        self.point_linear = ConvBNAct(s.mid_ch, s.out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


class ResidualBlock(nn.Module):
    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.conv = MBConv(spec)
        self.shortcut = spec.shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + x if self.shortcut else y


class Linear(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.linear = nn.Linear(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)


def build_layer(spec: LayerSpec) -> nn.Module:
    """A standalone module computing one layer (used by the network and by the profiler)."""
    if spec.kind == "stem":
        return ConvBNAct(spec.in_ch, spec.out_ch, spec.kernel, spec.stride, act=spec.act)
    if spec.kind == "mbconv":
        return ResidualBlock(spec)
    if spec.kind == "final_expand":
        return ConvBNAct(spec.in_ch, spec.out_ch, 1, act="h_swish")
    if spec.kind == "pool":
        return GlobalAvgPool()
    if spec.kind == "feature_mix":
        return ConvBNAct(spec.in_ch, spec.out_ch, 1, act="h_swish", bn=False)
    if spec.kind == "classifier":
        return nn.Sequential(Flatten(), Linear(spec.in_ch, spec.out_ch))
    raise ArchError(f"Unknown layer kind '{spec.kind}'.")


class StaticMBV3(nn.Module):
    """A plain MobileNetV3 network: what :func:`hwnas.supernet.extract` returns."""

    def __init__(self, layers: Sequence[LayerSpec]) -> None:
        super().__init__()
        by_kind = {s.kind: s for s in layers}
        self.layer_specs = tuple(layers)
        self.first_conv = build_layer(by_kind["stem"])
        self.blocks = nn.ModuleList([ResidualBlock(s) for s in layers if s.kind == "mbconv"])
        self.final_expand_layer = build_layer(by_kind["final_expand"])
        self.global_avg_pool = GlobalAvgPool()
        self.feature_mix_layer = build_layer(by_kind["feature_mix"])
        self.classifier = Linear(by_kind["classifier"].in_ch, by_kind["classifier"].out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for b in self.blocks:
            x = b(x)
        x = self.final_expand_layer(x)
        x = self.global_avg_pool(x)
        x = self.feature_mix_layer(x)
        return self.classifier(torch.flatten(x, 1))
