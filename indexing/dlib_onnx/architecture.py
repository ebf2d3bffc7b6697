"""The network *type* a dlib ``.dat`` was saved from, as data.

A dlib network's type is a C++ template; the file holds only the values, nested in the
order the template nests them, and nothing says which layer is a tag or a skip. So
reading a ``.dat`` needs its type, written out here from dlib's own definition of the
face recognition network (``tools/python/src/face_recognition.cpp``)::

    residual      = add_prev1<block<N,BN,1,tag1<SUBNET>>>
    residual_down = add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>
    block         = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    ares          = relu<residual<block,N,affine,SUBNET>>
    ares_down     = relu<residual_down<block,N,affine,SUBNET>>
    anet_type = loss_metric<fc_no_bias<128,avg_pool_everything<
                alevel0<alevel1<alevel2<alevel3<alevel4<
                max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,
                input_rgb_image_sized<150>>>>>>>>>>>>

Layers are listed bottom (next to the input) to top.
"""

from __future__ import annotations

from dataclasses import dataclass


def default_padding(window: int, stride: int) -> int:
    """dlib's default for ``con_`` and the pools: ``stride != 1 ? 0 : window/2``."""
    return 0 if stride != 1 else window // 2


@dataclass(frozen=True)
class ConSpec:
    filters: int
    rows: int
    cols: int
    stride_y: int
    stride_x: int

    @property
    def padding(self) -> tuple[int, int]:
        return (
            default_padding(self.rows, self.stride_y),
            default_padding(self.cols, self.stride_x),
        )


@dataclass(frozen=True)
class AffineSpec:
    pass


@dataclass(frozen=True)
class ReluSpec:
    pass


@dataclass(frozen=True)
class PoolSpec:
    kind: str  # "max" or "avg"
    rows: int  # 0: the whole plane (``*_pool_everything``)
    cols: int
    stride_y: int
    stride_x: int

    @property
    def padding(self) -> tuple[int, int]:
        return (
            default_padding(self.rows, self.stride_y),
            default_padding(self.cols, self.stride_x),
        )


@dataclass(frozen=True)
class TagSpec:
    id: int


@dataclass(frozen=True)
class SkipSpec:
    id: int


@dataclass(frozen=True)
class AddPrevSpec:
    tag: int


@dataclass(frozen=True)
class FcSpec:
    outputs: int
    has_bias: bool


LayerSpec = ConSpec | AffineSpec | ReluSpec | PoolSpec | TagSpec | SkipSpec | AddPrevSpec | FcSpec


@dataclass(frozen=True)
class NetworkSpec:
    input_rows: int
    input_cols: int
    layers: tuple[LayerSpec, ...]  # bottom to top


def _block(n: int, stride: int) -> list[LayerSpec]:
    return [
        ConSpec(n, 3, 3, stride, stride),
        AffineSpec(),
        ReluSpec(),
        ConSpec(n, 3, 3, 1, 1),
        AffineSpec(),
    ]


def _ares(n: int) -> list[LayerSpec]:
    return [TagSpec(1), *_block(n, 1), AddPrevSpec(1), ReluSpec()]


def _ares_down(n: int) -> list[LayerSpec]:
    return [
        TagSpec(1),
        *_block(n, 2),
        TagSpec(2),
        SkipSpec(1),
        PoolSpec("avg", 2, 2, 2, 2),
        AddPrevSpec(2),
        ReluSpec(),
    ]


def face_recognition_resnet_v1() -> NetworkSpec:
    """``anet_type`` of ``dlib_face_recognition_resnet_model_v1.dat``."""
    layers: list[LayerSpec] = [
        ConSpec(32, 7, 7, 2, 2),
        AffineSpec(),
        ReluSpec(),
        PoolSpec("max", 3, 3, 2, 2),
    ]
    layers += _ares(32) + _ares(32) + _ares(32)  # alevel4
    layers += _ares_down(64) + _ares(64) + _ares(64) + _ares(64)  # alevel3
    layers += _ares_down(128) + _ares(128) + _ares(128)  # alevel2
    layers += _ares_down(256) + _ares(256) + _ares(256)  # alevel1
    layers += _ares_down(256)  # alevel0
    layers += [PoolSpec("avg", 0, 0, 1, 1), FcSpec(128, has_bias=False)]
    return NetworkSpec(150, 150, tuple(layers))
