"""The elastic super-network (torch), compatible with Once-for-All MobileNetV3.

Module and parameter names follow OFA's current code (``blocks.N.conv.*``, dynamic
layers wrapping ``.conv``/``.bn``/``.linear``), so an official checkpoint maps onto
it key for key (see :mod:`hwnas.supernet.ofa_checkpoint`).

Elastic mechanisms, exactly as OFA:

* kernel: one ``max_k × max_k`` depthwise weight per block plus per-block transform
  matrices (``7to5_matrix`` 25×25, ``5to3_matrix`` 9×9); a smaller kernel is the
  centre crop of the next larger *transformed* kernel multiplied by the matrix;
* expand: the first ``mid`` channels everywhere (bottleneck rows, depthwise
  channels, point-linear columns, SE slices);
* depth: the first ``d`` blocks of each stage;
* BN: the first ``C`` entries of weight, bias and running statistics.

There is no global state: the active arch is passed to ``forward`` or set with
:meth:`ElasticMBV3.set_active`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.errors import ArchError
from hwnas.supernet.spaces import SearchSpace, get_space
from hwnas.supernet.static import (
    BN_EPS,
    BN_MOMENTUM,
    ConvBNAct,
    Linear,
    ResidualBlock,
    SqueezeExcite,
    init_weights,
    make_act,
)
from hwnas.types import ArchConfig


class DynamicConv(nn.Module):
    """1×1 conv whose output/input channels are sliced: ``weight[:cout, :cin]``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor, cout: int) -> torch.Tensor:
        w = self.conv.weight[:cout, : x.shape[1]]
        return F.conv2d(x, w)


class DynamicBN(nn.Module):
    """BatchNorm over the first ``C`` channels (updates those running entries in training)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        bn = self.bn
        if c == bn.num_features:
            return bn(x)
        training = bn.training or not bn.track_running_stats
        return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                            training, bn.momentum, bn.eps)


class DynamicDepthwise(nn.Module):
    """Depthwise conv with elastic kernel (OFA's ``DynamicSeparableConv2d``)."""

    def __init__(self, channels: int, kernel_choices: tuple[int, ...], stride: int) -> None:
        super().__init__()
        self.ks_set = tuple(sorted(kernel_choices))
        self.max_k = self.ks_set[-1]
        self.stride = stride
        self.conv = nn.Conv2d(channels, channels, self.max_k, stride, self.max_k // 2, groups=channels, bias=False)
        for small, large in zip(self.ks_set[:-1], self.ks_set[1:]):
            self.register_parameter(f"{large}to{small}_matrix", nn.Parameter(torch.eye(small * small)))

    def active_filter(self, channels: int, k: int) -> torch.Tensor:
        w = self.conv.weight[:channels]
        for i in range(len(self.ks_set) - 1, 0, -1):
            src = self.ks_set[i]
            if src <= k:
                break
            dst = self.ks_set[i - 1]
            lo = (src - dst) // 2
            sub = w[:, :, lo:lo + dst, lo:lo + dst].reshape(-1, dst * dst)
            w = F.linear(sub, getattr(self, f"{src}to{dst}_matrix")).reshape(channels, 1, dst, dst)
        return w

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        c = x.shape[1]
        return F.conv2d(x, self.active_filter(c, k), None, self.stride, k // 2, 1, c)


class _Sub(nn.Module):
    """Container giving OFA's ``depth_conv.{conv,bn,se}`` nesting."""


class DynamicMBConv(nn.Module):
    def __init__(self, cin: int, cout: int, max_mid: int, kernel_choices, stride: int, act: str, se: bool) -> None:
        super().__init__()
        self.inverted_bottleneck = _Sub()
        self.inverted_bottleneck.conv = DynamicConv(cin, max_mid)
        self.inverted_bottleneck.bn = DynamicBN(max_mid)
        self.depth_conv = _Sub()
        self.depth_conv.conv = DynamicDepthwise(max_mid, kernel_choices, stride)
        self.depth_conv.bn = DynamicBN(max_mid)
        if se:
            self.depth_conv.se = SqueezeExcite(max_mid, SearchSpace.se_channels(max_mid), elastic=True)
        self.point_linear = _Sub()
        self.point_linear.conv = DynamicConv(max_mid, cout)
        self.point_linear.bn = DynamicBN(cout)
        self.act = make_act(act)
        self.has_se = se
        self.cout = cout

    def forward(self, x: torch.Tensor, k: int, mid: int) -> torch.Tensor:
        x = self.act(self.inverted_bottleneck.bn(self.inverted_bottleneck.conv(x, mid)))
        x = self.act(self.depth_conv.bn(self.depth_conv.conv(x, k)))
        if self.has_se:
            x = self.depth_conv.se(x)
        return self.point_linear.bn(self.point_linear.conv(x, self.cout))


class ElasticBlock(nn.Module):
    def __init__(self, conv: DynamicMBConv, shortcut: bool) -> None:
        super().__init__()
        self.conv = conv
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor, k: int, mid: int) -> torch.Tensor:
        y = self.conv(x, k, mid)
        return y + x if self.shortcut else y


class ElasticMBV3(nn.Module):
    """A super-network over ``space``; ``forward(x, arch)`` runs one subnet.

    ``x`` must already be at ``arch.r`` pixels. Use :func:`hwnas.supernet.extract`
    to get a static module of one subnet.
    """

    def __init__(self, space: SearchSpace | str) -> None:
        super().__init__()
        sp = get_space(space)
        self.space = sp
        self.first_conv = ConvBNAct(sp.in_channels, sp.stem_width, 3, sp.stem_stride, act=sp.stem_act)
        maxa = sp.max_arch()
        specs = [s for s in sp.layers(maxa) if s.kind == "mbconv"]
        blocks: list[nn.Module] = [ResidualBlock(specs[0])]
        for slot in range(sp.n_slots):
            spec = specs[slot + 1]
            conv = DynamicMBConv(spec.in_ch, spec.out_ch, sp.max_mid_channels(slot), sp.kernel_choices,
                                 spec.stride, spec.act, spec.se)
            blocks.append(ElasticBlock(conv, spec.shortcut))
        self.blocks = nn.ModuleList(blocks)
        last = sp.stages[-1].width
        self.final_expand_layer = ConvBNAct(last, sp.final_expand_width, 1, act="h_swish")
        self.feature_mix_layer = ConvBNAct(sp.final_expand_width, sp.feature_mix_width, 1, act="h_swish", bn=False)
        self.classifier = Linear(sp.feature_mix_width, sp.n_classes)
        self._active: ArchConfig | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_weights(self)

    # -- active arch -----------------------------------------------------------
    def set_active(self, arch: ArchConfig) -> ElasticMBV3:
        self._check(arch)
        self._active = arch
        return self

    @property
    def active(self) -> ArchConfig:
        return self._active if self._active is not None else self.space.max_arch()

    def _check(self, arch: ArchConfig) -> None:
        if arch.space != self.space.name:
            raise ArchError(f"Arch is from space '{arch.space}' but this super-network is '{self.space.name}'.")

    def forward(self, x: torch.Tensor, arch: ArchConfig | None = None) -> torch.Tensor:
        arch = self.active if arch is None else arch
        self._check(arch)
        sp = self.space
        x = self.first_conv(x)
        x = self.blocks[0](x)
        for s, lo in enumerate(sp.stage_offsets):
            for j in range(arch.d[s]):
                slot = lo + j
                mid = sp.mid_channels(x.shape[1], arch.e[slot])
                x = self.blocks[slot + 1](x, arch.ks[slot], mid)
        x = self.final_expand_layer(x)
        x = x.mean((2, 3), keepdim=True)
        x = self.feature_mix_layer(x)
        return self.classifier(x.reshape(x.shape[0], -1))
