"""Build an ONNX graph that computes what a :class:`DlibNetwork` computes.

The graph takes RGB chips as dlib gets them (uint8, ``(n, rows, cols, 3)``, dynamic
batch) and returns the raw network output (``(n, 128)`` for the face model; callers
L2-normalise). Shapes are static apart from the batch, so they are tracked here at
build time: that is what lets ``add_prev`` of two differently shaped tensors zero-pad
the smaller one, which is what dlib's ``tt::add`` does, and what shows which kernel taps
of a convolution on a small plane only ever meet padding.

From the first convolution to the global pool every op is one that onnxruntime's CPU
provider keeps in its blocked (NCHWc) layout, where the convolutions also absorb the
residual Adds and Relus: one op without a blocked form puts a layout change on each
side of it.
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


def _input(b: _Builder, net: DlibNetwork, *, folded: bool) -> tuple[str, Shape]:
    # dlib: (pixel - mean) / 256 in float32, channel planes R, G, B (input.h).
    x = b.node("Cast", [INPUT_NAME], to=TensorProto.FLOAT)
    rows, cols = net.input.rows, net.input.cols
    if folded:
        # The first convolution reads each row's interleaved R, G, B values as one plane
        # (see _fold_input): a reshape, where planes would need a transpose.
        shape = b.const("interleaved", np.array([0, 1, rows, cols * 3], dtype=np.int64))
        return b.node("Reshape", [x, shape]), (1, rows, cols * 3)
    x = b.node("Transpose", [x], perm=[0, 3, 1, 2])
    mean = np.asarray(net.input.mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    x = b.node("Sub", [x, b.const("mean", mean)])
    x = b.node("Mul", [x, b.const("scale", np.array(1 / 256, dtype=np.float32))])
    return x, (3, rows, cols)


def _fold_input(net: DlibNetwork) -> list[Layer] | None:
    """The layers with the input layer folded into the first convolution, or None when
    that is not exact. That convolution then reads the chip as it comes, one plane of
    ``cols × 3`` interleaved values per row.

    ``(pixel - mean) / 256``: with no padding every input of the convolution is a real
    pixel, so ``W·(x - m)/256 + b = (W/256)·x + (b - W·m/256)``; with padding the zeros
    would stand for ``pixel = mean`` instead of 0.
    The R, G, B planes: tap ``(c, ky, kx)`` of a filter becomes tap ``(0, ky, 3·kx + c)``
    with the column stride times 3, which reads the same pixel; again only without
    padding, which would otherwise pad whole pixels rather than single values."""
    first = net.layers[0] if net.layers else None
    if not isinstance(first, Conv) or first.padding != (0, 0):
        return None
    w = first.weights.astype(np.float64)
    out_ch, in_ch, kh, kw = w.shape
    mean = np.asarray(net.input.mean_rgb, dtype=np.float64)
    if in_ch != mean.size:
        return None
    bias = np.zeros(out_ch) if first.bias is None else first.bias.astype(np.float64)
    shift = np.einsum("oikl,i->o", w, mean) / 256
    interleaved = (w / 256).transpose(0, 2, 3, 1).reshape(out_ch, 1, kh, kw * in_ch)
    folded = Conv(
        weights=interleaved.astype(np.float32),
        bias=(bias - shift).astype(np.float32),
        stride=(first.stride[0], first.stride[1] * in_ch),
        padding=(0, 0),
        relu=first.relu,
    )
    return [folded, *net.layers[1:]]


def _used_taps(size: int, window: int, stride: int, pad: int) -> tuple[int, int]:
    """First and last kernel offset along one axis that ever lands on the input rather
    than on the zero padding."""
    out = _conv_out(size, window, stride, pad)
    used = [k for k in range(window) if any(0 <= r * stride - pad + k < size for r in range(out))]
    return (used[0], used[-1]) if used else (0, window - 1)


def _trimmed(
    weights: NDArray[np.float32],
    size: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int],
) -> tuple[NDArray[np.float32], list[int]]:
    """The kernel without the rows and columns that only ever meet padding, and the ONNX
    pads (begin y, begin x, end y, end x) that keep every output where it was. Those taps
    add 0·w, so dropping them changes nothing; on a small input they can be most of the
    kernel (a 3×3 kernel with padding 1 on a 1×1 input is a 1×1 kernel)."""
    kh, kw = weights.shape[2:]
    (y0, y1), (x0, x1) = (
        _used_taps(n, k, s, p) for n, k, s, p in zip(size, (kh, kw), stride, pads, strict=True)
    )
    begin = [pads[0] - y0, pads[1] - x0]
    end = [pads[0] - (kh - 1 - y1), pads[1] - (kw - 1 - x1)]
    if min(begin + end) < 0:  # would need a negative pad: keep the kernel whole
        return weights, [pads[0], pads[1], pads[0], pads[1]]
    return weights[:, :, y0 : y1 + 1, x0 : x1 + 1], begin + end


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
    rows = _conv_out(shape[1], kh, conv.stride[0], py)
    cols = _conv_out(shape[2], kw, conv.stride[1], px)
    weights, pads = _trimmed(weights, (shape[1], shape[2]), conv.stride, conv.padding)
    y = b.node(
        "Conv",
        [x, b.const("W", weights.astype(np.float32)), b.const("B", bias.astype(np.float32))],
        kernel_shape=list(weights.shape[2:]),
        strides=list(conv.stride),
        pads=pads,
    )
    if conv.relu:
        y = b.node("Relu", [y])
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
    # tensors at index 0 and treats the missing elements as 0. Both as convolutions,
    # which keep the blocked layout; a Pad does not, and the two Pads this replaced
    # also kept the Adds and Relus of the next residual blocks out of the convolutions
    # (measured: 2–3% of the graph's time).
    if shape[0] < target[0]:
        # Extra channels: a 1×1 convolution with an identity block.
        eye = np.eye(target[0], shape[0], dtype=np.float32).reshape(target[0], shape[0], 1, 1)
        x = b.node("Conv", [x, b.const("widen", eye)], kernel_shape=[1, 1])
        shape = (target[0], shape[1], shape[2])
    if shape == target:
        return x
    # Extra rows and columns: a depthwise 1×1 convolution by 1 with the zeros as its
    # padding, x·1 where there is an input and 0 where there is none (both exact).
    k = shape[0]
    return b.node(
        "Conv",
        [x, b.const("ones", np.ones((k, 1, 1, 1), dtype=np.float32))],
        kernel_shape=[1, 1],
        group=k,
        pads=[0, 0, target[1] - shape[1], target[2] - shape[2]],
    )


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
    folded = _fold_input(net)
    x, shape = _input(b, net, folded=folded is not None)
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

    if not layers or not isinstance(layers[-1], FullyConnected):  # its output is 2-D
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
