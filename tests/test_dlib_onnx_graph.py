"""The ONNX graph builder against dlib's layer semantics computed by hand in numpy, and
the graph built from the shipped ``.dat``."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from indexing.dlib_onnx.cache import build_graph_bytes, default_dat_path
from indexing.dlib_onnx.graph import INPUT_NAME, OUTPUT_NAME, build_model
from indexing.dlib_onnx.layers import (
    AddPrev,
    Affine,
    Conv,
    DlibNetwork,
    FullyConnected,
    InputRGB,
    Pool,
    Relu,
    Skip,
    Tag,
)

MEAN = (122.782, 117.001, 104.298)


def _run(model: onnx.ModelProto, chips: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: chips})[0]


def _dlib_input(chips: np.ndarray) -> np.ndarray:
    """input_rgb_image: (pixel - mean) / 256, planes R, G, B."""
    x = (chips.astype(np.float32) - np.array(MEAN, dtype=np.float32)) / 256
    return x.transpose(0, 3, 1, 2)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation, zero padding, output 1 + (n + 2p - k) // s (dlib's con_)."""
    n, _, rows, cols = x.shape
    out_ch, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_r, out_c = 1 + (rows + 2 * pad - kh) // stride, 1 + (cols + 2 * pad - kw) // stride
    y = np.zeros((n, out_ch, out_r, out_c), dtype=np.float64)
    for r in range(out_r):
        for c in range(out_c):
            patch = xp[:, :, r * stride : r * stride + kh, c * stride : c * stride + kw]
            y[:, :, r, c] = np.einsum("nkij,okij->no", patch, w)
    return y + b.reshape(1, -1, 1, 1)


def _rng_chips(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_conv_affine_relu_pool_fc_match_dlib_semantics() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    gamma, beta = rng.normal(size=4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    fc = rng.normal(size=(4, 5)).astype(np.float32)
    net = DlibNetwork(
        InputRGB(MEAN, 9, 9),
        (
            Conv(w, b, stride=(2, 2), padding=(0, 0)),
            Affine(gamma, beta),
            Relu(),
            Pool("max", (3, 3), (1, 1), (1, 1)),
            Pool("avg", (0, 0), (1, 1), (0, 0)),
            FullyConnected(fc, None),
        ),
        "loss_metric_2",
    )
    chips = _rng_chips(3, 9)
    x = _conv(_dlib_input(chips), w, b, stride=2, pad=0)  # 9 → 4
    x = np.maximum(x * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1), 0)
    # max pool 3×3 stride 1 pad 1: padded positions never win (dlib clips the window)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    pooled = np.stack(
        [
            np.stack([xp[:, :, r : r + 3, c : c + 3].max(axis=(2, 3)) for c in range(4)], -1)
            for r in range(4)
        ],
        -2,
    )
    expected = pooled.mean(axis=(2, 3)) @ fc
    got = _run(build_model(net, producer_version="test"), chips)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_add_prev_of_different_shapes_zero_pads_the_smaller() -> None:
    """residual_down on an even-sized input: the strided conv gives 3×3 where the average
    pool of the skip gives 4×4, and the conv has more channels. dlib's tt::add keeps the
    larger size in every dimension and treats missing elements as 0."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=(5, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    net = DlibNetwork(
        InputRGB(MEAN, 8, 8),
        (
            Tag(1),
            Conv(w, b, stride=(2, 2), padding=(0, 0)),  # (5, 3, 3)
            Tag(2),
            Skip(1),
            Pool("avg", (2, 2), (2, 2), (0, 0)),  # (3, 4, 4)
            AddPrev(2),
        ),
        "loss_metric_2",
    )
    chips = _rng_chips(2, 8, seed=3)
    x = _dlib_input(chips)
    block = _conv(x, w, b, stride=2, pad=0)
    skip = x.reshape(2, 3, 4, 2, 4, 2).mean(axis=(3, 5))
    expected = np.zeros((2, 5, 4, 4))
    expected[:, :5, :3, :3] += block
    expected[:, :3, :4, :4] += skip
    got = _run(build_model(net, producer_version="test"), chips)
    np.testing.assert_allclose(got, expected.reshape(2, -1), rtol=1e-4, atol=1e-5)


def test_kernel_taps_that_only_meet_padding_are_dropped() -> None:
    """On small planes: a stride-2 3×3 convolution with padding 1 on 2×2 never uses its
    first row and column, a 3×3 one with padding 1 on 1×1 only its centre."""
    rng = np.random.default_rng(6)
    w1, w2, w3 = (rng.normal(size=(4, c, 3, 3)).astype(np.float32) for c in (3, 4, 4))
    b1, b2, b3 = (rng.normal(size=4).astype(np.float32) for _ in range(3))
    net = DlibNetwork(
        InputRGB(MEAN, 4, 4),
        (
            Conv(w1, b1, stride=(1, 1), padding=(0, 0)),  # 4 → 2
            Conv(w2, b2, stride=(2, 2), padding=(1, 1)),  # 2 → 1
            Conv(w3, b3, stride=(1, 1), padding=(1, 1)),  # 1 → 1
        ),
        "loss_metric_2",
    )
    model = build_model(net, producer_version="test")
    kernels = [
        next(a.ints for a in node.attribute if a.name == "kernel_shape")
        for node in model.graph.node
        if node.op_type == "Conv"
    ]
    assert kernels == [[3, 9], [2, 2], [1, 1]]
    chips = _rng_chips(3, 4, seed=7)
    x = _conv(_dlib_input(chips), w1, b1, stride=1, pad=0)
    x = _conv(x, w2, b2, stride=2, pad=1)
    expected = _conv(x, w3, b3, stride=1, pad=1)
    got = _run(model, chips)
    np.testing.assert_allclose(got, expected.reshape(3, -1), rtol=1e-4, atol=1e-5)


def test_graph_built_from_the_dat() -> None:
    model = onnx.load_from_string(build_graph_bytes(default_dat_path().read_bytes()))
    onnx.checker.check_model(model)
    (inp,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, dims) == (INPUT_NAME, ["n", 150, 150, 3])
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].name == OUTPUT_NAME
    ops = [node.op_type for node in model.graph.node]
    # 29 convolutions, each with its affine folded in; 3 identity 1×1 convolutions that
    # give the skip path of residual_down its extra (zero) channels: 32→64, 64→128,
    # 128→256; and 2 depthwise 1×1 convolutions whose padding gives the block of
    # residual_down its zero rows/cols at 4×4 (3 vs 4) and 2×2 (1 vs 2).
    assert ops.count("Conv") == 29 + 3 + 2
    assert "Pad" not in ops and "Transpose" not in ops
    # (pixel - mean) / 256 and the R, G, B planes are folded into the first convolution
    # (it has no padding), which reads the chip's rows of interleaved values.
    assert ops[:3] == ["Cast", "Reshape", "Conv"]
    assert "Mul" not in ops and "Sub" not in ops
    kernels = [
        next(a.ints for a in node.attribute if a.name == "kernel_shape")
        for node in model.graph.node
        if node.op_type == "Conv"
    ]
    assert kernels[0] == [7, 21]
    # The last block's second convolution runs on a 1×1 plane with padding 1: only the
    # centre of its 3×3 kernel ever meets the input.
    assert kernels.count([3, 3]) == 27 and kernels.count([1, 1]) == 3 + 2 + 1

    chips = _rng_chips(5, 150, seed=4)
    batch = _run(model, chips)
    assert batch.shape == (5, 128) and np.isfinite(batch).all()
    single = np.concatenate([_run(model, chips[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-5)


def test_building_is_deterministic() -> None:
    data = default_dat_path().read_bytes()
    assert build_graph_bytes(data) == build_graph_bytes(data)
