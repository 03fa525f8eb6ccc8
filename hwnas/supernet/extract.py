"""Subnet extraction: an elastic super-network + an arch → a static ``nn.Module``.

The static network holds copies of the sliced (and, for smaller kernels,
transformed) weights, so its output equals the super-network's output for that
arch. Its ``state_dict`` has the key layout of OFA's ``get_active_subnet``.
"""

from __future__ import annotations

import torch

from hwnas.supernet.elastic import ElasticMBV3
from hwnas.supernet.static import StaticMBV3
from hwnas.types import ArchConfig


def _copy_bn(dst: torch.nn.BatchNorm2d, src: torch.nn.BatchNorm2d) -> None:
    c = dst.num_features
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    dst.running_mean.copy_(src.running_mean[:c])
    dst.running_var.copy_(src.running_var[:c])


@torch.no_grad()
def extract(supernet: ElasticMBV3, arch: ArchConfig) -> StaticMBV3:
    """Return the static subnet ``arch`` of ``supernet`` in eval mode (weights copied, not shared)."""
    supernet._check(arch)
    sp = supernet.space
    layers = sp.layers(arch)
    net = StaticMBV3(layers)
    net.first_conv.load_state_dict(supernet.first_conv.state_dict())
    net.blocks[0].load_state_dict(supernet.blocks[0].state_dict())
    mb_specs = [s for s in layers if s.kind == "mbconv"][1:]
    for dst_block, spec in zip(net.blocks[1:], mb_specs):
        src = supernet.blocks[spec.index].conv
        dst = dst_block.conv
        mid = spec.mid_ch
        dst.inverted_bottleneck.conv.weight.copy_(src.inverted_bottleneck.conv.conv.weight[:mid, : spec.in_ch])
        _copy_bn(dst.inverted_bottleneck.bn, src.inverted_bottleneck.bn.bn)
        dst.depth_conv.conv.weight.copy_(src.depth_conv.conv.active_filter(mid, spec.kernel))
        _copy_bn(dst.depth_conv.bn, src.depth_conv.bn.bn)
        if spec.se:
            m = spec.se_mid
            se_src, se_dst = src.depth_conv.se.fc, dst.depth_conv.se.fc
            se_dst.reduce.weight.copy_(se_src.reduce.weight[:m, :mid])
            se_dst.reduce.bias.copy_(se_src.reduce.bias[:m])
            se_dst.expand.weight.copy_(se_src.expand.weight[:mid, :m])
            se_dst.expand.bias.copy_(se_src.expand.bias[:mid])
        dst.point_linear.conv.weight.copy_(src.point_linear.conv.conv.weight[:, :mid])
        _copy_bn(dst.point_linear.bn, src.point_linear.bn.bn)
    net.final_expand_layer.load_state_dict(supernet.final_expand_layer.state_dict())
    net.feature_mix_layer.load_state_dict(supernet.feature_mix_layer.state_dict())
    net.classifier.load_state_dict(supernet.classifier.state_dict())
    return net.eval()
