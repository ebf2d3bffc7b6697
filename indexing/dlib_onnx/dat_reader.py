"""Read a dlib DNN ``.dat`` (``dlib::serialize(net)``) into :class:`DlibNetwork`.

dlib serializes a network outside-in: ``add_loss_layer`` writes its version, the loss
details, then its subnetwork; every ``add_layer`` writes its version, then its whole
subnetwork, and only then its own layer details, flags and (empty) cached tensors;
``add_tag_layer`` and ``add_skip_layer`` write a version and their subnetwork. So the
file holds the versions of all layers top-down, then the input layer, then the details
bottom-up. The layer type (``NetworkSpec``) says which layer is which; every
hyper-parameter the file repeats (filter size, stride, padding, pool window) is checked
against it, so a file saved from a different network type is refused, not misread.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from indexing.dlib_onnx.architecture import (
    AddPrevSpec,
    AffineSpec,
    ConSpec,
    FcSpec,
    LayerSpec,
    NetworkSpec,
    PoolSpec,
    ReluSpec,
    SkipSpec,
    TagSpec,
)
from indexing.dlib_onnx.layers import (
    AddPrev,
    Affine,
    Conv,
    DlibNetwork,
    FullyConnected,
    InputRGB,
    Layer,
    Pool,
    Relu,
    Skip,
    Tag,
)
from indexing.dlib_onnx.serialization import DlibFormatError, DlibStream

_CONV_MODE = 0  # dlib's layer_mode::CONV_MODE


def read_dat(data: bytes, spec: NetworkSpec) -> DlibNetwork:
    """Parse the bytes of a ``.dat`` saved from a network of type ``spec``."""
    s = DlibStream(data)
    s.expect_version((1,), "add_loss_layer")
    loss = s.expect_string(("loss_metric_", "loss_metric_2"), "loss layer")
    if loss == "loss_metric_2":
        s.read_float("loss margin")
        s.read_float("loss distance threshold")

    bottom, above = spec.layers[0], spec.layers[1:]
    versions: list[int] = []
    for layer in reversed(above):  # top-down: each wrapper's version before its subnet
        if isinstance(layer, TagSpec | SkipSpec):
            s.expect_version((1,), type(layer).__name__)
            versions.append(0)
        else:
            versions.append(s.expect_version((1, 2), "add_layer"))
    versions.reverse()

    input_version = s.expect_version((2, 3), "add_layer over the input layer")
    input_layer = _read_input(s, spec)
    layers = [_read_details(s, bottom)]
    _read_add_layer_state(s, params_grad=False)
    s.read_tensor("grad_final")
    if input_version >= 3:
        s.read_uint("sample_expansion_factor")

    for layer, version in zip(above, versions, strict=True):
        if isinstance(layer, TagSpec):
            layers.append(Tag(layer.id))
        elif isinstance(layer, SkipSpec):
            layers.append(Skip(layer.id))
        else:
            layers.append(_read_details(s, layer))
            _read_add_layer_state(s, params_grad=version >= 2)
    if s.remaining:
        raise DlibFormatError(f"{s.remaining} bytes left after the network", s.offset)
    return DlibNetwork(input=input_layer, layers=tuple(layers), loss=loss)


def _read_add_layer_state(s: DlibStream, *, params_grad: bool) -> None:
    """Training-time state each ``add_layer`` saves after its details; unused here."""
    s.read_bool("this_layer_setup_called")
    s.read_bool("gradient_input_is_stale")
    s.read_bool("get_output_and_gradient_input_disabled")
    s.read_tensor("x_grad")
    s.read_tensor("cached_output")
    if params_grad:
        s.read_tensor("params_grad")


def _read_input(s: DlibStream, spec: NetworkSpec) -> InputRGB:
    version = s.expect_string(("input_rgb_image", "input_rgb_image_sized"), "input layer")
    mean = (s.read_float("avg_red"), s.read_float("avg_green"), s.read_float("avg_blue"))
    rows, cols = spec.input_rows, spec.input_cols
    if version == "input_rgb_image_sized":
        start = s.offset
        rows, cols = s.read_uint("input rows"), s.read_uint("input cols")
        if (rows, cols) != (spec.input_rows, spec.input_cols):
            raise DlibFormatError(f"input is {rows}×{cols}, expected {spec.input_rows}", start)
    return InputRGB(mean_rgb=mean, rows=rows, cols=cols)


def _read_details(s: DlibStream, layer: LayerSpec) -> Layer:
    if isinstance(layer, ConSpec):
        return _read_con(s, layer)
    if isinstance(layer, AffineSpec):
        return _read_affine(s)
    if isinstance(layer, ReluSpec):
        if s.expect_string(("relu_", "relu_2"), "relu") == "relu_2" and s.read_bool("disabled"):
            raise DlibFormatError("a disabled relu is not supported", s.offset)
        return Relu()
    if isinstance(layer, PoolSpec):
        return _read_pool(s, layer)
    if isinstance(layer, AddPrevSpec):
        s.expect_string(("add_prev_",), "add_prev")
        return AddPrev(layer.tag)
    if isinstance(layer, FcSpec):
        return _read_fc(s, layer)
    raise TypeError(f"{layer!r} has no details to read")


def _check(s: DlibStream, what: str, found: object, expected: object) -> None:
    if found != expected:
        raise DlibFormatError(f"{what} is {found}, the network type says {expected}", s.offset)


def _read_con(s: DlibStream, layer: ConSpec) -> Conv:
    version = s.expect_string(("con_4", "con_5", "con_6"), "con")
    params = s.read_tensor("con params").reshape(-1)
    _check(s, "num_filters", s.read_int("num_filters"), layer.filters)
    _check(s, "filter size", (s.read_int("nr"), s.read_int("nc")), (layer.rows, layer.cols))
    stride = (s.read_int("stride_y"), s.read_int("stride_x"))
    _check(s, "stride", stride, (layer.stride_y, layer.stride_x))
    padding = (s.read_int("padding_y"), s.read_int("padding_x"))
    _check(s, "padding", padding, layer.padding)
    filters = s.read_alias("filters")
    biases = s.read_alias("biases")
    for name in ("lr", "wd", "bias lr", "bias wd"):
        s.read_float(name + " multiplier")
    use_bias = s.read_bool("use_bias") if version in ("con_5", "con_6") else True
    use_relu = s.read_bool("use_relu") if version == "con_6" else False
    _check(
        s,
        "filters shape",
        (filters.num_samples, filters.nr, filters.nc),
        (layer.filters, layer.rows, layer.cols),
    )
    n_bias = biases.size if use_bias else 0
    _check(s, "con params size", params.size, filters.size + n_bias)
    weights = params[: filters.size].reshape(filters.num_samples, filters.k, filters.nr, filters.nc)
    bias = params[filters.size :].copy() if use_bias else None
    return Conv(weights=weights.copy(), bias=bias, stride=stride, padding=padding, relu=use_relu)


def _read_affine(s: DlibStream) -> Affine:
    version = s.expect_string(("bn_con2", "affine_", "affine_2"), "affine (or bn_con)")
    params = s.read_tensor("affine params").reshape(-1)
    gamma_shape = s.read_alias("gamma")
    beta_shape = s.read_alias("beta")
    _check(s, "gamma/beta sizes", gamma_shape.size, beta_shape.size)
    _check(s, "affine params size", params.size, gamma_shape.size + beta_shape.size)
    gamma = params[: gamma_shape.size]
    beta = params[gamma_shape.size :]
    if version == "bn_con2":
        return _bn_as_affine(s, gamma, beta)
    _check(s, "affine mode", s.read_int("mode"), _CONV_MODE)
    if version == "affine_2" and s.read_bool("disabled"):
        raise DlibFormatError("a disabled affine layer is not supported", s.offset)
    return Affine(gamma=gamma.copy(), beta=beta.copy())


def _bn_as_affine(s: DlibStream, gamma: NDArray[np.float32], beta: NDArray[np.float32]) -> Affine:
    """What ``affine_(const bn_&)`` computes: the batch-norm's running statistics folded
    into a scale and shift, in float32 as dlib does."""
    s.read_tensor("means")
    s.read_tensor("invstds")
    running_means = s.read_tensor("running_means").reshape(-1)
    running_variances = s.read_tensor("running_variances").reshape(-1)
    s.read_uint("num_updates")
    s.read_uint("running_stats_window_size")
    for name in ("lr", "wd", "bias lr", "bias wd"):
        s.read_float(name + " multiplier")
    eps = np.float32(s.read_float("eps"))
    _check(s, "running statistics size", running_means.size, gamma.size)
    g = (gamma / np.sqrt(running_variances + eps)).astype(np.float32)
    b = (beta - g * running_means).astype(np.float32)
    return Affine(gamma=g, beta=b)


def _read_pool(s: DlibStream, layer: PoolSpec) -> Pool:
    s.expect_string((f"{layer.kind}_pool_2",), f"{layer.kind}_pool")
    window = (s.read_int("nr"), s.read_int("nc"))
    stride = (s.read_int("stride_y"), s.read_int("stride_x"))
    padding = (s.read_int("padding_y"), s.read_int("padding_x"))
    _check(s, "pool window", window, (layer.rows, layer.cols))
    _check(s, "pool stride", stride, (layer.stride_y, layer.stride_x))
    _check(s, "pool padding", padding, layer.padding)
    return Pool(kind=layer.kind, window=window, stride=stride, padding=padding)


def _read_fc(s: DlibStream, layer: FcSpec) -> FullyConnected:
    version = s.expect_string(("fc_2", "fc_3"), "fc")
    _check(s, "num_outputs", s.read_uint("num_outputs"), layer.outputs)
    num_inputs = s.read_uint("num_inputs")
    params = s.read_tensor("fc params").reshape(-1)
    weights = s.read_alias("weights")
    s.read_alias("biases")
    _check(s, "fc bias mode", s.read_int("bias_mode"), 0 if layer.has_bias else 1)
    for name in ("lr", "wd", "bias lr", "bias wd"):
        s.read_float(name + " multiplier")
    use_bias = s.read_bool("use_bias") if version == "fc_3" else True
    use_bias = use_bias and layer.has_bias
    _check(s, "fc weights", (weights.num_samples, weights.k), (num_inputs, layer.outputs))
    n_bias = layer.outputs if use_bias else 0
    _check(s, "fc params size", params.size, weights.size + n_bias)
    w = params[: weights.size].reshape(num_inputs, layer.outputs).copy()
    bias = params[weights.size :].copy() if use_bias else None
    return FullyConnected(weights=w, bias=bias)
