"""dlib's serialization primitives and the ``.dat`` reader, on hand-made bytes.

The expected values are worked out by hand from ``dlib/serialize.h``: a control byte
(low nibble = number of magnitude bytes, 0x80 = negative), little-endian magnitude;
floats as mantissa then exponent; tensors as raw little-endian float32.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from indexing.dlib_onnx.architecture import (
    AffineSpec,
    ConSpec,
    FcSpec,
    NetworkSpec,
    PoolSpec,
    ReluSpec,
    face_recognition_resnet_v1,
)
from indexing.dlib_onnx.cache import default_dat_path
from indexing.dlib_onnx.dat_reader import read_dat
from indexing.dlib_onnx.layers import Affine, Conv, FullyConnected, Pool, Relu
from indexing.dlib_onnx.serialization import AliasShape, DlibFormatError, DlibStream


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"\x01\x00", 0),
        (b"\x01\x05", 5),
        (b"\x81\x05", -5),
        (b"\x02\x00\x01", 256),
        (b"\x82\x2c\x01", -300),
        (b"\x08" + b"\xff" * 7 + b"\x7f", 2**63 - 1),
    ],
)
def test_signed_integers(raw: bytes, value: int) -> None:
    s = DlibStream(raw)
    assert s.read_int() == value
    assert s.remaining == 0


def test_unsigned_integers() -> None:
    s = DlibStream(b"\x01\x96" + b"\x03\x40\x42\x0f")
    assert s.read_uint() == 150
    assert s.read_uint() == 1_000_000


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00",  # a size of 0 is an error in dlib
        b"\x09" + b"\x00" * 9,  # more than 8 bytes
        b"\x02\x01",  # truncated magnitude
        b"",  # nothing at all
        b"\x31\x00",  # reserved bits set: not dlib's integer format
    ],
)
def test_bad_integers_are_refused(raw: bytes) -> None:
    with pytest.raises(DlibFormatError):
        DlibStream(raw).read_int()


def test_negative_unsigned_is_refused() -> None:
    with pytest.raises(DlibFormatError, match="unsigned"):
        DlibStream(b"\x81\x01").read_uint()


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        # 1.0 = 0x80 * 2**-7 (float_details shifts off zero low bytes of the mantissa)
        (b"\x01\x80" + b"\x81\x07", 1.0),
        # -0.5 = -0x80 * 2**-8
        (b"\x81\x80" + b"\x81\x08", -0.5),
        # the loss margin and distance threshold stored in dlib's face model
        (b"\x03\x0a\xd7\xa3" + b"\x81\x1c", 0xA3D70A * 2.0**-28),
        (b"\x03\x9a\x99\x99" + b"\x81\x18", 0x99999A * 2.0**-24),
        (b"\x01\x00" + b"\x01\x00", 0.0),
    ],
)
def test_floats(raw: bytes, value: float) -> None:
    s = DlibStream(raw)
    assert s.read_float() == value
    assert s.remaining == 0


def test_float_special_exponents() -> None:
    zero = b"\x01\x00"
    assert DlibStream(zero + b"\x02\x00\x7d").read_float() == math.inf  # 32000
    assert DlibStream(zero + b"\x02\x01\x7d").read_float() == -math.inf  # 32001
    assert math.isnan(DlibStream(zero + b"\x02\x02\x7d").read_float())  # 32002


def test_margin_reads_as_dlibs_float() -> None:
    assert np.float32(DlibStream(b"\x03\x0a\xd7\xa3\x81\x1c").read_float()) == np.float32(0.04)


def test_bool_string_and_version_checks() -> None:
    s = DlibStream(b"10" + b"\x01\x05con_6" + b"\x01\x02")
    assert s.read_bool() is True
    assert s.read_bool() is False
    assert s.expect_string(("con_5", "con_6"), "con") == "con_6"
    with pytest.raises(DlibFormatError, match="version 2"):
        s.expect_version((1,), "add_tag_layer")
    with pytest.raises(DlibFormatError, match="bool"):
        DlibStream(b"x").read_bool()
    with pytest.raises(DlibFormatError, match="expected"):
        DlibStream(b"\x01\x04fc_9").expect_string(("fc_2", "fc_3"), "fc")


def test_tensor_and_alias() -> None:
    values = struct.pack("<3f", 1.5, -2.0, 0.25)
    raw = b"\x01\x02" + b"\x01\x01\x01\x03\x01\x01\x01\x01" + values
    tensor = DlibStream(raw).read_tensor()
    assert tensor.shape == (1, 3, 1, 1)
    assert tensor.dtype == np.float32
    assert tensor.reshape(-1).tolist() == [1.5, -2.0, 0.25]

    alias = DlibStream(b"\x01\x01" + b"\x01\x20\x01\x03\x01\x07\x01\x07").read_alias()
    assert alias == AliasShape(32, 3, 7, 7)
    assert alias.size == 32 * 3 * 7 * 7


def test_truncated_tensor_says_where() -> None:
    raw = b"\x01\x02" + b"\x01\x01\x01\x03\x01\x01\x01\x01" + struct.pack("<2f", 1, 2)
    with pytest.raises(DlibFormatError, match="truncated") as info:
        DlibStream(raw).read_tensor()
    assert info.value.offset == 10


# --- a whole hand-made network file ------------------------------------------------------


def _int(v: int) -> bytes:
    mag = abs(v).to_bytes(max(1, (abs(v).bit_length() + 7) // 8), "little")
    return bytes([len(mag) | (0x80 if v < 0 else 0)]) + mag


def _float(v: float) -> bytes:
    m, e = math.frexp(v)
    return _int(int(m * 2**24)) + _int(e - 24)


def _str(v: str) -> bytes:
    return _int(len(v)) + v.encode()


def _tensor(a: np.ndarray, shape: tuple[int, int, int, int]) -> bytes:
    return _int(2) + b"".join(_int(d) for d in shape) + a.astype("<f4").tobytes()


def _alias(*shape: int) -> bytes:
    return _int(1) + b"".join(_int(d) for d in shape)


EMPTY = _tensor(np.zeros(0), (0, 0, 0, 0))
STATE = b"100" + EMPTY + EMPTY  # setup called, not stale, not disabled; x_grad, cached


def _tiny_dat(filters: np.ndarray, bias: np.ndarray, bn: np.ndarray, fc: np.ndarray) -> bytes:
    """loss_metric<fc_no_bias<2,avg_pool_everything<relu<bn_con<con<2,3,3,1,1,
    input_rgb_image_sized<4>>>>>>> as dlib would save it."""
    gamma, beta, mean, var = bn
    out = _int(1) + _str("loss_metric_2") + _float(0.04) + _float(0.6)
    out += _int(2) * 4  # add_layer versions: fc, avg_pool, relu, bn — top-down
    out += _int(2)  # the add_layer over the input layer
    out += _str("input_rgb_image_sized") + _float(122.5) + _float(117.0) + _float(104.25)
    out += _int(4) + _int(4)
    con = np.concatenate([filters.reshape(-1), bias])
    out += _str("con_5") + _tensor(con, (con.size, 1, 1, 1)) + _int(2)
    out += _int(3) + _int(3) + _int(1) + _int(1) + _int(1) + _int(1)  # nr nc stride pad
    out += _alias(2, 3, 3, 3) + _alias(1, 2, 1, 1) + _float(1) * 2 + _float(1) + _float(0)
    out += b"1"  # use_bias
    out += STATE + EMPTY  # + grad_final (input-level add_layer, version 2)
    bn_params = np.concatenate([gamma, beta])
    out += _str("bn_con2") + _tensor(bn_params, (4, 1, 1, 1)) + _alias(1, 2, 1, 1) * 2
    out += EMPTY * 2 + _tensor(mean, (1, 2, 1, 1)) + _tensor(var, (1, 2, 1, 1))
    out += _int(100) + _int(1000) + _float(1) * 4 + _float(0.0001)
    out += STATE + EMPTY
    out += _str("relu_2") + b"0" + STATE + EMPTY
    out += _str("avg_pool_2") + b"".join(_int(v) for v in (0, 0, 1, 1, 0, 0)) + STATE + EMPTY
    out += _str("fc_3") + _int(2) + _int(2) + _tensor(fc.reshape(-1), (2, 2, 1, 1))
    out += _alias(2, 2, 1, 1) + _alias(0, 0, 0, 0) + _int(1) + _float(1) * 4 + b"0"
    out += STATE + EMPTY
    return out


TINY_SPEC = NetworkSpec(
    4,
    4,
    (
        ConSpec(2, 3, 3, 1, 1),
        AffineSpec(),
        ReluSpec(),
        PoolSpec("avg", 0, 0, 1, 1),
        FcSpec(2, has_bias=False),
    ),
)


def _tiny_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    filters = rng.normal(size=(2, 3, 3, 3)).astype(np.float32)
    bias = np.array([0.5, -0.25], dtype=np.float32)
    bn = np.array([[2.0, 0.5], [0.1, -0.2], [0.3, -0.4], [4.0, 0.25]], dtype=np.float32)
    fc = np.array([[1.0, 2.0], [3.0, -1.0]], dtype=np.float32)
    return filters, bias, bn, fc


def test_reads_a_hand_made_network() -> None:
    filters, bias, bn, fc = _tiny_weights()
    net = read_dat(_tiny_dat(filters, bias, bn, fc), TINY_SPEC)
    assert net.loss == "loss_metric_2"
    assert (net.input.rows, net.input.cols) == (4, 4)
    assert net.input.mean_rgb == (122.5, 117.0, 104.25)
    conv, affine, relu, pool, dense = net.layers
    assert isinstance(conv, Conv) and conv.stride == (1, 1) and conv.padding == (1, 1)
    np.testing.assert_array_equal(conv.weights, filters)
    np.testing.assert_array_equal(conv.bias, bias)
    # bn_con in inference form: gamma / sqrt(var + eps), beta - that * mean
    assert isinstance(affine, Affine)
    gamma, beta, mean, var = bn
    expected_g = gamma / np.sqrt(var + np.float32(0.0001))
    np.testing.assert_allclose(affine.gamma, expected_g, rtol=1e-6)
    np.testing.assert_allclose(affine.beta, beta - expected_g * mean, rtol=1e-6)
    assert isinstance(relu, Relu)
    assert isinstance(pool, Pool) and pool.window == (0, 0)
    assert isinstance(dense, FullyConnected) and dense.bias is None
    np.testing.assert_array_equal(dense.weights, fc)


def test_file_of_another_network_type_is_refused() -> None:
    filters, bias, bn, fc = _tiny_weights()
    raw = _tiny_dat(filters, bias, bn, fc)
    other = NetworkSpec(4, 4, (ConSpec(2, 3, 3, 2, 2),) + TINY_SPEC.layers[1:])
    with pytest.raises(DlibFormatError, match="stride"):
        read_dat(raw, other)
    with pytest.raises(DlibFormatError, match="truncated"):
        read_dat(raw[:-5], TINY_SPEC)
    with pytest.raises(DlibFormatError, match="left after"):
        read_dat(raw + b"\x00", TINY_SPEC)


def test_reads_the_shipped_face_model() -> None:
    net = read_dat(default_dat_path().read_bytes(), face_recognition_resnet_v1())
    assert net.loss == "loss_metric_2"
    assert np.allclose(net.input.mean_rgb, (122.782, 117.001, 104.298))
    convs = [layer for layer in net.layers if isinstance(layer, Conv)]
    assert len(convs) == 29  # 1 + 14 residual blocks × 2
    assert convs[0].weights.shape == (32, 3, 7, 7)
    assert convs[-1].weights.shape == (256, 256, 3, 3)
    dense = net.layers[-1]
    assert isinstance(dense, FullyConnected) and dense.weights.shape == (256, 128)
    n_params = sum(c.weights.size + (c.bias.size if c.bias is not None else 0) for c in convs)
    assert 5_000_000 < n_params + dense.weights.size < 6_000_000
    assert all(np.isfinite(c.weights).all() for c in convs)
