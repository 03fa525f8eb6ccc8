"""Search spaces of the MobileNetV3 block family (torch-free).

A :class:`SearchSpace` describes an elastic super-network in the Once-for-All
MobileNetV3 style: a stem conv, a static first block (depthwise + pointwise,
expand 1), elastic stages of MBConv blocks (kernel, expand ratio per block;
depth per stage) and a head (final expand conv, global pool, feature-mix conv,
classifier). Everything that needs only the arithmetic of the network lives
here: validation, the per-layer description of a subnet (:meth:`layers`),
analytic MACs and parameter counts, sampling, mutation, crossover and the
fixed-length encodings used by predictors and by the search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hwnas.errors import ArchError
from hwnas.registry import SPACES
from hwnas.types import ArchConfig


def make_divisible(v: float, divisor: int = 8, min_val: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor`` the way Once-for-All does (never >10 % down)."""
    min_val = divisor if min_val is None else min_val
    new = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


def conv_out(h: int, stride: int) -> int:
    """Output size of a conv with padding k//2: ``(h - 1) // stride + 1``."""
    return (h - 1) // stride + 1


@dataclass(frozen=True)
class StageSpec:
    width: int
    stride: int
    act: str  # "relu" | "h_swish"
    se: bool
    max_depth: int


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a static subnet, with its shapes. ``kind`` is one of
    ``stem``, ``mbconv``, ``final_expand``, ``pool``, ``feature_mix``, ``classifier``.

    ``index`` is the super-network block index for ``mbconv`` (0 = the static first block).
    """

    kind: str
    in_ch: int
    out_ch: int
    in_hw: int
    out_hw: int
    kernel: int = 1
    stride: int = 1
    mid_ch: int = 0
    act: str = ""
    se: bool = False
    se_mid: int = 0
    shortcut: bool = False
    expand: float = 1.0
    index: int = -1

    def key(self) -> str:
        """Once-for-All style lookup-table key (shapes ``HxWxC``)."""
        i = f"input:{self.in_hw}x{self.in_hw}x{self.in_ch}"
        o = f"output:{self.out_hw}x{self.out_hw}x{self.out_ch}"
        if self.kind == "stem":
            return f"Conv-{i}-{o}-act:{self.act}"
        if self.kind == "mbconv":
            return (
                f"expanded_conv-{i}-{o}-expand:{self.mid_ch}-kernel:{self.kernel}-stride:{self.stride}"
                f"-idskip:{int(self.shortcut)}-se:{int(self.se)}-hs:{int(self.act == 'h_swish')}"
            )
        if self.kind == "final_expand":
            return f"Conv_1-{i}-{o}"
        if self.kind == "pool":
            return f"AvgPool2D-{i}-output:1x1x{self.out_ch}"
        if self.kind == "feature_mix":
            return f"Conv_2-input:1x1x{self.in_ch}-output:1x1x{self.out_ch}"
        if self.kind == "classifier":
            return f"Logits-input:1x1x{self.in_ch}-output:{self.out_ch}"
        raise ArchError(f"Unknown layer kind '{self.kind}'.")

    @property
    def macs(self) -> int:
        """Multiply-accumulates, counted as Once-for-All's ``count_flops_given_config``."""
        o2 = self.out_hw * self.out_hw
        if self.kind == "stem":
            return self.in_ch * self.out_ch * self.kernel**2 * o2
        if self.kind == "mbconv":
            m = 0
            if self.expand != 1:
                m += self.in_hw * self.in_hw * self.in_ch * self.mid_ch
            m += o2 * self.mid_ch * self.kernel**2
            if self.se:
                m += 2 * self.mid_ch * self.se_mid
            m += o2 * self.mid_ch * self.out_ch
            return m
        if self.kind == "final_expand":
            return o2 * self.in_ch * self.out_ch
        if self.kind in ("feature_mix", "classifier"):
            return self.in_ch * self.out_ch
        return 0

    @property
    def params(self) -> int:
        """Trainable parameters of the static layer (conv weights, BN affine, biases)."""
        if self.kind == "stem":
            return self.in_ch * self.out_ch * self.kernel**2 + 2 * self.out_ch
        if self.kind == "mbconv":
            p = 0
            if self.expand != 1:
                p += self.in_ch * self.mid_ch + 2 * self.mid_ch
            p += self.mid_ch * self.kernel**2 + 2 * self.mid_ch
            if self.se:
                p += self.mid_ch * self.se_mid + self.se_mid + self.se_mid * self.mid_ch + self.mid_ch
            p += self.mid_ch * self.out_ch + 2 * self.out_ch
            return p
        if self.kind == "final_expand":
            return self.in_ch * self.out_ch + 2 * self.out_ch
        if self.kind == "feature_mix":
            return self.in_ch * self.out_ch
        if self.kind == "classifier":
            return self.in_ch * self.out_ch + self.out_ch
        return 0


@dataclass(frozen=True)
class SearchSpace:
    """An elastic MobileNetV3-family super-network and the subnets it holds."""

    name: str
    description: str
    in_channels: int
    n_classes: int
    stem_width: int
    stages: tuple[StageSpec, ...]
    final_expand_width: int
    feature_mix_width: int
    kernel_choices: tuple[int, ...]
    expand_choices: tuple[float, ...]
    depth_choices: tuple[int, ...]
    resolutions: tuple[int, ...]
    stem_stride: int = 2
    stem_act: str = "h_swish"
    first_block_act: str = "relu"
    dataset: str = ""

    # -- structure -------------------------------------------------------------
    @cached_property
    def n_slots(self) -> int:
        return sum(s.max_depth for s in self.stages)

    @cached_property
    def stage_offsets(self) -> tuple[int, ...]:
        offs, o = [], 0
        for s in self.stages:
            offs.append(o)
            o += s.max_depth
        return tuple(offs)

    def slot_stage(self, slot: int) -> int:
        for s, lo in reversed(list(enumerate(self.stage_offsets))):
            if slot >= lo:
                return s
        raise IndexError(slot)

    def block_in_channels(self, slot: int) -> int:
        """Input width of elastic slot ``slot`` (the previous stage's width for a stage's first block)."""
        s = self.slot_stage(slot)
        if slot == self.stage_offsets[s]:
            return self.stages[s - 1].width if s > 0 else self.stem_width
        return self.stages[s].width

    def mid_channels(self, in_ch: int, expand: float) -> int:
        return make_divisible(round(in_ch * expand), 8)

    def max_mid_channels(self, slot: int) -> int:
        return self.mid_channels(self.block_in_channels(slot), max(self.expand_choices))

    @staticmethod
    def se_channels(mid: int) -> int:
        return make_divisible(mid // 4, 8)

    # -- validation ------------------------------------------------------------
    def validate(
        self, ks: Sequence[int], e: Sequence[float], d: Sequence[int], r: int
    ) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """Check every slot; return ``(ks, e)`` with inactive slots set to the smallest choice."""
        n = self.n_slots
        if len(ks) != n:
            raise ArchError(f"Space '{self.name}' needs {n} kernel sizes (one per block slot), got {len(ks)}.")
        if len(e) != n:
            raise ArchError(f"Space '{self.name}' needs {n} expand ratios (one per block slot), got {len(e)}.")
        if len(d) != len(self.stages):
            raise ArchError(f"Space '{self.name}' needs {len(self.stages)} stage depths, got {len(d)}.")
        for s, depth in enumerate(d):
            allowed = [x for x in self.depth_choices if x <= self.stages[s].max_depth]
            if depth not in allowed:
                raise ArchError(f"Space '{self.name}': depth of stage {s + 1} is {depth}; allowed {allowed}.")
        if r not in self.resolutions:
            raise ArchError(
                f"Space '{self.name}': resolution {r} is not allowed; allowed {_ranges(self.resolutions)}."
            )
        ks_out, e_out = list(ks), list(e)
        for s, lo in enumerate(self.stage_offsets):
            for j in range(self.stages[s].max_depth):
                i = lo + j
                if j >= d[s]:
                    ks_out[i], e_out[i] = self.kernel_choices[0], self.expand_choices[0]
                    continue
                if ks[i] not in self.kernel_choices:
                    raise ArchError(
                        f"Space '{self.name}': kernel of slot {i} (stage {s + 1}, block {j + 1}) is {ks[i]}; "
                        f"allowed {list(self.kernel_choices)}."
                    )
                if e[i] not in self.expand_choices:
                    raise ArchError(
                        f"Space '{self.name}': expand ratio of slot {i} (stage {s + 1}, block {j + 1}) is "
                        f"{e[i]:g}; allowed {[float(x) if not float(x).is_integer() else int(x) for x in self.expand_choices]}."
                    )
        return tuple(ks_out), tuple(e_out)

    # -- the static network of one arch ------------------------------------------
    def layers(self, arch: ArchConfig) -> list[LayerSpec]:
        """Every layer of the subnet in execution order, with input/output shapes."""
        self._check_space(arch)
        r = arch.r
        h = conv_out(r, self.stem_stride)
        out = [LayerSpec("stem", self.in_channels, self.stem_width, r, h, 3, self.stem_stride, act=self.stem_act)]
        w = self.stem_width
        out.append(
            LayerSpec("mbconv", w, w, h, h, 3, 1, mid_ch=w, act=self.first_block_act, shortcut=True, expand=1, index=0)
        )
        for s, stage in enumerate(self.stages):
            for j in range(arch.d[s]):
                slot = self.stage_offsets[s] + j
                stride = stage.stride if j == 0 else 1
                in_ch = w if j == 0 else stage.width
                mid = self.mid_channels(in_ch, arch.e[slot])
                h2 = conv_out(h, stride)
                out.append(
                    LayerSpec(
                        "mbconv", in_ch, stage.width, h, h2, arch.ks[slot], stride,
                        mid_ch=mid, act=stage.act, se=stage.se,
                        se_mid=self.se_channels(mid) if stage.se else 0,
                        shortcut=stride == 1 and in_ch == stage.width,
                        expand=arch.e[slot], index=slot + 1,
                    )
                )
                h = h2
            w = stage.width
        fe, fm = self.final_expand_width, self.feature_mix_width
        out += [
            LayerSpec("final_expand", w, fe, h, h, act="h_swish"),
            LayerSpec("pool", fe, fe, h, 1),
            LayerSpec("feature_mix", fe, fm, 1, 1, act="h_swish"),
            LayerSpec("classifier", fm, self.n_classes, 1, 1),
        ]
        return out

    def all_layers(self, resolutions: Sequence[int] | None = None) -> list[LayerSpec]:
        """Every distinct layer any subnet can contain at these resolutions (deduplicated by ``key()``).

        Feature-map sizes do not depend on depth, so a stage contributes one first-block
        and one later-block variant per (kernel, expand) and resolution.
        """
        seen: dict[str, LayerSpec] = {}
        for r in resolutions or self.resolutions:
            # the max-depth arch holds every (stage, position) slot; uniform k/e covers each choice
            for k in self.kernel_choices:
                for e in self.expand_choices:
                    for layer in self.layers(self.arch(k, e, max(self.depth_choices), r)):
                        seen.setdefault(layer.key(), layer)
        return list(seen.values())

    def macs(self, arch: ArchConfig) -> int:
        return sum(layer.macs for layer in self.layers(arch))

    def params(self, arch: ArchConfig) -> int:
        return sum(layer.params for layer in self.layers(arch))

    def input_shape(self, arch: ArchConfig, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.in_channels, arch.r, arch.r)

    # -- canonical archs ---------------------------------------------------------
    def arch(self, ks, e, d, r) -> ArchConfig:
        """Build an arch, broadcasting scalars to every slot/stage."""
        n = self.n_slots
        ks = (ks,) * n if np.isscalar(ks) else tuple(ks)
        e = (e,) * n if np.isscalar(e) else tuple(e)
        d = tuple(min(d, s.max_depth) for s in self.stages) if np.isscalar(d) else tuple(d)
        return ArchConfig(self.name, ks, e, d, int(r))

    def min_arch(self, r: int | None = None) -> ArchConfig:
        return self.arch(min(self.kernel_choices), min(self.expand_choices), min(self.depth_choices),
                         min(self.resolutions) if r is None else r)

    def max_arch(self, r: int | None = None) -> ArchConfig:
        return self.arch(max(self.kernel_choices), max(self.expand_choices), max(self.depth_choices),
                         max(self.resolutions) if r is None else r)

    # -- genome: integer index per gene, used by sampling and by the search -----
    @cached_property
    def gene_choices(self) -> list[tuple]:
        """Choices per gene: ``n_slots`` kernels, ``n_slots`` expands, one depth per stage, resolution."""
        depth = [tuple(x for x in self.depth_choices if x <= s.max_depth) for s in self.stages]
        return [self.kernel_choices] * self.n_slots + [self.expand_choices] * self.n_slots + depth + [self.resolutions]

    @property
    def n_genes(self) -> int:
        return len(self.gene_choices)

    def from_genome(self, genome: Sequence[int]) -> ArchConfig:
        g = [int(x) for x in genome]
        ch = self.gene_choices
        vals = [ch[i][g[i]] for i in range(len(ch))]
        n = self.n_slots
        return ArchConfig(self.name, tuple(vals[:n]), tuple(vals[n:2 * n]),
                          tuple(vals[2 * n:2 * n + len(self.stages)]), vals[-1])

    def to_genome(self, arch: ArchConfig) -> np.ndarray:
        self._check_space(arch)
        vals = list(arch.ks) + list(arch.e) + list(arch.d) + [arch.r]
        return np.array([ch.index(v) for ch, v in zip(self.gene_choices, vals)], dtype=np.int64)

    def sample(self, rng: np.random.Generator, resolutions: Sequence[int] | None = None) -> ArchConfig:
        """Uniform over every gene (inactive slots are drawn too, then normalised away)."""
        g = [rng.integers(len(c)) for c in self.gene_choices]
        if resolutions is not None:
            g[-1] = self.resolutions.index(int(rng.choice(list(resolutions))))
        return self.from_genome(g)

    def mutate(self, arch: ArchConfig, rng: np.random.Generator, prob: float = 0.1) -> ArchConfig:
        """Redraw each gene with probability ``prob`` (inactive slots included, as in OFA's evolution)."""
        g = self.to_genome(arch)
        for i, ch in enumerate(self.gene_choices):
            if rng.random() < prob:
                g[i] = rng.integers(len(ch))
        return self.from_genome(g)

    def crossover(self, a: ArchConfig, b: ArchConfig, rng: np.random.Generator) -> ArchConfig:
        """Uniform crossover: each gene from ``a`` or ``b`` with equal probability."""
        ga, gb = self.to_genome(a), self.to_genome(b)
        pick = rng.random(len(ga)) < 0.5
        return self.from_genome(np.where(pick, ga, gb))

    # -- encodings for predictors ------------------------------------------------
    @property
    def encoding_dim(self) -> int:
        return len(self.resolutions) + self.n_slots * (len(self.kernel_choices) + len(self.expand_choices))

    def encode(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        """One-hot ``[resolution | kernel per slot | expand per slot]``, inactive slots all zero
        (Once-for-All's newer ``MobileNetArchEncoder`` layout). Shape ``(n, encoding_dim)``."""
        nk, ne, nr = len(self.kernel_choices), len(self.expand_choices), len(self.resolutions)
        x = np.zeros((len(archs), self.encoding_dim), dtype=np.float32)
        for row, a in enumerate(archs):
            self._check_space(a)
            x[row, self.resolutions.index(a.r)] = 1
            for s, lo in enumerate(self.stage_offsets):
                for j in range(a.d[s]):
                    i = lo + j
                    x[row, nr + i * nk + self.kernel_choices.index(a.ks[i])] = 1
                    x[row, nr + self.n_slots * nk + i * ne + self.expand_choices.index(a.e[i])] = 1
        return x

    def _check_space(self, arch: ArchConfig) -> None:
        if arch.space != self.name:
            raise ArchError(f"Arch is from space '{arch.space}', not '{self.name}'.")

    def summary(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "input": f"{self.in_channels}x{_ranges(self.resolutions)}",
            "classes": self.n_classes,
            "stages": len(self.stages),
            "slots": self.n_slots,
            "kernel": list(self.kernel_choices),
            "expand": [x for x in self.expand_choices],
            "depth": list(self.depth_choices),
            "resolutions": list(self.resolutions),
            "macs_m": [round(self.macs(self.min_arch()) / 1e6, 2), round(self.macs(self.max_arch()) / 1e6, 2)],
        }


def _ranges(values: Sequence[int]) -> str:
    v = sorted(values)
    if len(v) > 3:
        steps = {b - a for a, b in zip(v, v[1:])}
        if len(steps) == 1:
            return f"{v[0]}..{v[-1]} step {steps.pop()}"
    return str(v)


# --------------------------------------------------------------------------- the registry
def get_space(name: str | SearchSpace) -> SearchSpace:
    if isinstance(name, SearchSpace):
        return name
    return SPACES.get(name)


def list_spaces(pattern: str = "*") -> list[str]:
    return SPACES.list(pattern)


def _ofa_mbv3(width_mult: float) -> SearchSpace:
    base = [16, 16, 24, 40, 80, 112, 160, 960, 1280]
    w = [make_divisible(b * width_mult, 8) for b in base]
    acts = ["relu", "relu", "h_swish", "h_swish", "h_swish"]
    ses = [False, True, False, True, True]
    strides = [2, 2, 2, 1, 2]
    stages = tuple(StageSpec(w[2 + i], strides[i], acts[i], ses[i], 4) for i in range(5))
    lo = 128 if width_mult == 1.0 else 160
    return SearchSpace(
        name=f"ofa-mbv3-w{width_mult:.1f}",
        description=f"Once-for-All MobileNetV3 (width {width_mult:.1f}), ImageNet 3x{lo}..224; "
        "loads the official ofa_mbv3_d234_e346_k357 checkpoint",
        in_channels=3,
        n_classes=1000,
        stem_width=w[0],
        stages=stages,
        final_expand_width=w[7],
        feature_mix_width=w[8],
        kernel_choices=(3, 5, 7),
        expand_choices=(3, 4, 6),
        depth_choices=(2, 3, 4),
        resolutions=tuple(range(lo, 225, 4)),
        dataset="imagenet",
    )


def _fmnist_mbv3() -> SearchSpace:
    # 28x28 grayscale. The stem and the first stage downsample at once (7x7 after
    # stage 1): on a 2-core CPU a 14x14 stage with 144-channel depthwise 7x7 convs
    # made one sandwich step ~6 s, this layout ~2 s. Resolutions 20..32 resize the
    # input; with elastic depth/kernel/expand the space spans ~11x in MACs.
    return SearchSpace(
        name="fmnist-mbv3",
        description="MobileNetV3 blocks for 1x28x28 images (Fashion-MNIST), 4 elastic stages",
        in_channels=1,
        n_classes=10,
        stem_width=16,
        stages=(
            StageSpec(24, 2, "relu", False, 3),
            StageSpec(40, 1, "relu", True, 3),
            StageSpec(64, 2, "h_swish", False, 3),
            StageSpec(96, 1, "h_swish", True, 3),
        ),
        final_expand_width=384,
        feature_mix_width=512,
        kernel_choices=(3, 5, 7),
        expand_choices=(2, 3, 4),
        depth_choices=(1, 2, 3),
        resolutions=(20, 24, 28, 32),
        dataset="fashion-mnist",
    )


def _tiny_mbv3() -> SearchSpace:
    return SearchSpace(
        name="tiny-mbv3",
        description="A tiny space of the same block family for tests (1x16..28 inputs)",
        in_channels=1,
        n_classes=10,
        stem_width=8,
        stages=(StageSpec(16, 2, "relu", False, 2), StageSpec(24, 2, "h_swish", True, 2)),
        final_expand_width=48,
        feature_mix_width=64,
        kernel_choices=(3, 5),
        expand_choices=(2, 3),
        depth_choices=(1, 2),
        resolutions=(16, 20, 24, 28),
        dataset="fashion-mnist",
    )


SPACES.register("ofa-mbv3-w1.0", lambda: _ofa_mbv3(1.0), "Once-for-All MobileNetV3 w1.0 (ImageNet)")
SPACES.register("ofa-mbv3-w1.2", lambda: _ofa_mbv3(1.2), "Once-for-All MobileNetV3 w1.2 (ImageNet)")
SPACES.register("fmnist-mbv3", _fmnist_mbv3, "MobileNetV3 family for Fashion-MNIST")
SPACES.register("tiny-mbv3", _tiny_mbv3, "tiny space for tests")
