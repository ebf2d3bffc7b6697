"""Build an ONNX graph that computes what a :class:`DlibNetwork` computes.

The graph takes RGB chips as dlib gets them (uint8, ``(n, rows, cols, 3)``, dynamic
batch) and returns the raw network output (``(n, 128)`` for the face model; callers
L2-normalise). Shapes are static apart from the batch, so they are tracked here at
build time: that is what lets ``add_prev`` of two differently shaped tensors become a
zero ``Pad`` of the smaller one, which is what dlib's ``tt::add`` does.
"""

from __future__ import annotations

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from indexing.dlib_onnx.layers import (
    AddPrev,
    Affine,
    Conv,
    DlibNetwork,
    FullyConnected,
    Layer,
    Pool,
    Relu,
    Skip,
    Tag,
)

INPUT_NAME = "chips"
OUTPUT_NAME = "descriptor"
OPSET = 17

Shape = tuple[int, int, int]  # (channels, rows, cols)


class UnsupportedLayer(ValueError):
    """A layer configuration this builder does not translate (none in the face model)."""


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, prefix: str, value: NDArray[np.generic]) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _conv_out(size: int, window: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - window) // stride


def _input(b: _Builder, net: DlibNetwork, *, normalise: bool) -> str:
    # dlib: (pixel - mean) / 256 in float32, channel planes R, G, B (input.h).
    x = b.node("Cast", [INPUT_NAME], to=TensorProto.FLOAT)
    x = b.node("Transpose", [x], perm=[0, 3, 1, 2])
    if not normalise:
        return x
    mean = np.asarray(net.input.mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    x = b.node("Sub", [x, b.const("mean", mean)])
    return b.node("Mul", [x, b.const("scale", np.array(1 / 256, dtype=np.float32))])


def _fold_input_normalisation(net: DlibNetwork) -> list[Layer] | None:
    """The layers with ``(pixel - mean) / 256`` folded into the first convolution, or
    None when that is not exact. With no padding every input of the convolution is a
    real pixel, so ``W·(x - m)/256 + b = (W/256)·x + (b - W·m/256)``; with padding the
    zeros would stand for ``pixel = mean`` instead of 0."""
    first = net.layers[0] if net.layers else None
    if not isinstance(first, Conv) or first.padding != (0, 0):
        return None
    w = first.weights.astype(np.float64)
    mean = np.asarray(net.input.mean_rgb, dtype=np.float64)
    bias = np.zeros(w.shape[0]) if first.bias is None else first.bias.astype(np.float64)
    shift = np.einsum("oikl,i->o", w, mean) / 256
    folded = Conv(
        weights=(w / 256).astype(np.float32),
        bias=(bias - shift).astype(np.float32),
        stride=first.stride,
        padding=first.padding,
        relu=first.relu,
    )
    return [folded, *net.layers[1:]]


def _conv(
    b: _Builder, x: str, shape: Shape, conv: Conv, affine: Affine | None
) -> tuple[str, Shape]:
    out_ch, in_ch, kh, kw = conv.weights.shape
    if in_ch != shape[0]:
        raise UnsupportedLayer(f"conv expects {in_ch} channels, its input has {shape[0]}")
    weights = conv.weights
    bias = conv.bias if conv.bias is not None else np.zeros(out_ch, dtype=np.float32)
    if affine is not None:
        # affine(conv(x)) = conv with filters scaled by gamma and bias gamma*b + beta.
        weights = weights * affine.gamma.reshape(-1, 1, 1, 1)
        bias = bias * affine.gamma + affine.beta
    py, px = conv.padding
    y = b.node(
        "Conv",
        [x, b.const("W", weights.astype(np.float32)), b.const("B", bias.astype(np.float32))],
        kernel_shape=[kh, kw],
        strides=list(conv.stride),
        pads=[py, px, py, px],
    )
    if conv.relu:
        y = b.node("Relu", [y])
    rows = _conv_out(shape[1], kh, conv.stride[0], py)
    cols = _conv_out(shape[2], kw, conv.stride[1], px)
    return y, (out_ch, rows, cols)


def _pool(b: _Builder, x: str, shape: Shape, pool: Pool) -> tuple[str, Shape]:
    if pool.window == (0, 0):
        op = "GlobalMaxPool" if pool.kind == "max" else "GlobalAveragePool"
        return b.node(op, [x]), (shape[0], 1, 1)
    if pool.kind == "avg" and pool.padding != (0, 0):
        # dlib averages over the clipped window; ONNX's count_include_pad=0 matches only
        # for some shapes, and the face model never pads an average pool.
        raise UnsupportedLayer("padded average pooling")
    py, px = pool.padding
    y = b.node(
        "MaxPool" if pool.kind == "max" else "AveragePool",
        [x],
        kernel_shape=list(pool.window),
        strides=list(pool.stride),
        pads=[py, px, py, px],
    )
    rows = _conv_out(shape[1], pool.window[0], pool.stride[0], py)
    cols = _conv_out(shape[2], pool.window[1], pool.stride[1], px)
    return y, (shape[0], rows, cols)


def _pad_to(b: _Builder, x: str, shape: Shape, target: Shape) -> str:
    if shape == target:
        return x
    # Zeros appended after the last channel, row and column: tt::add aligns the two
    # tensors at index 0 and treats the missing elements as 0.
    if shape[0] < target[0]:
        # Extra channels by a 1×1 convolution with an identity block: the same zeros as a
        # Pad, but a Conv stays in onnxruntime's blocked (NCHWc) layout, where a Pad
        # forces a layout change on each side (measured: ~4% of the graph's time).
        eye = np.eye(target[0], shape[0], dtype=np.float32).reshape(target[0], shape[0], 1, 1)
        x = b.node("Conv", [x, b.const("widen", eye)], kernel_shape=[1, 1])
        shape = (target[0], shape[1], shape[2])
    if shape == target:
        return x
    extra = [0, 0, target[1] - shape[1], target[2] - shape[2]]
    pads = np.array([0, 0, 0, 0] + extra, dtype=np.int64)
    return b.node("Pad", [x, b.const("pads", pads)], mode="constant")


def _add_prev(b: _Builder, x: str, shape: Shape, tagged: tuple[str, Shape]) -> tuple[str, Shape]:
    other, other_shape = tagged
    target = tuple(max(p, q) for p, q in zip(shape, other_shape, strict=True))
    out_shape: Shape = (target[0], target[1], target[2])
    y = b.node("Add", [_pad_to(b, x, shape, out_shape), _pad_to(b, other, other_shape, out_shape)])
    return y, out_shape


def _fc(b: _Builder, x: str, shape: Shape, fc: FullyConnected) -> tuple[str, Shape]:
    n_in, n_out = fc.weights.shape
    if n_in != shape[0] * shape[1] * shape[2]:
        raise UnsupportedLayer(f"fc expects {n_in} inputs, gets {shape}")
    flat = b.node("Flatten", [x], axis=1)
    y = b.node("MatMul", [flat, b.const("fcW", fc.weights.astype(np.float32))])
    if fc.bias is not None:
        y = b.node("Add", [y, b.const("fcB", fc.bias.astype(np.float32))])
    return y, (n_out, 1, 1)


def build_model(net: DlibNetwork, *, producer_version: str) -> onnx.ModelProto:
    """The ONNX model of ``net``; checked with ``onnx.checker`` before it is returned."""
    b = _Builder()
    folded = _fold_input_normalisation(net)
    x = _input(b, net, normalise=folded is None)
    shape: Shape = (3, net.input.rows, net.input.cols)
    tags: dict[int, tuple[str, Shape]] = {}
    layers: list[Layer] = folded if folded is not None else list(net.layers)
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv):
            following = layers[i + 1] if i + 1 < len(layers) else None
            # Fold the affine that follows a conv (not when a fused relu sits between).
            affine = following if isinstance(following, Affine) and not layer.relu else None
            x, shape = _conv(b, x, shape, layer, affine)
            i += 2 if affine is not None else 1
            continue
        if isinstance(layer, Affine):
            k = layer.gamma.size
            x = b.node("Mul", [x, b.const("gamma", layer.gamma.reshape(1, k, 1, 1))])
            x = b.node("Add", [x, b.const("beta", layer.beta.reshape(1, k, 1, 1))])
        elif isinstance(layer, Relu):
            x = b.node("Relu", [x])
        elif isinstance(layer, Pool):
            x, shape = _pool(b, x, shape, layer)
        elif isinstance(layer, Tag):
            tags[layer.id] = (x, shape)
        elif isinstance(layer, Skip):
            x, shape = _tagged(tags, layer.id)
        elif isinstance(layer, AddPrev):
            x, shape = _add_prev(b, x, shape, _tagged(tags, layer.tag))
        elif isinstance(layer, FullyConnected):
            x, shape = _fc(b, x, shape, layer)
        i += 1

    if shape[1:] != (1, 1):
        x = b.node("Flatten", [x], axis=1)
    out_dim = shape[0] * shape[1] * shape[2]
    b.nodes.append(helper.make_node("Identity", [x], [OUTPUT_NAME], name=OUTPUT_NAME))
    graph = helper.make_graph(
        b.nodes,
        "dlib_network",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.UINT8, ["n", net.input.rows, net.input.cols, 3]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["n", out_dim])],
        initializer=b.initializers,
    )
    model = helper.make_model(
        graph,
        producer_name="faceprint.indexing.dlib_onnx",
        producer_version=producer_version,
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = 8  # readable by every onnxruntime since 1.14
    onnx.checker.check_model(model)
    return model


def _tagged(tags: dict[int, tuple[str, Shape]], tag_id: int) -> tuple[str, Shape]:
    try:
        return tags[tag_id]
    except KeyError:
        raise UnsupportedLayer(f"tag{tag_id} is referenced before any tag{tag_id}") from None
