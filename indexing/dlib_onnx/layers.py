"""The layers of a dlib DNN as plain data, bottom (input) to top, with their weights.

Each record says what one dlib layer computes at inference time; ``graph.py`` turns a
list of them into ONNX nodes and ``network.py`` reads them from a ``.dat`` file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class InputRGB:
    """``input_rgb_image_sized``: an RGB chip becomes ``(pixel - mean) / 256`` per channel,
    planes in R, G, B order."""

    mean_rgb: tuple[float, float, float]
    rows: int
    cols: int


@dataclass(frozen=True)
class Conv:
    """``con_``: cross-correlation, OIHW filters, zero padding, optional fused relu."""

    weights: NDArray[np.float32]  # (out, in, kh, kw)
    bias: NDArray[np.float32] | None  # (out,)
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x), both sides
    relu: bool = False


@dataclass(frozen=True)
class Affine:
    """``affine_`` (or a ``bn_`` in inference form): ``gamma * x + beta`` per channel."""

    gamma: NDArray[np.float32]  # (k,)
    beta: NDArray[np.float32]  # (k,)


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Pool:
    """``max_pool_`` / ``avg_pool_``. A window of 0 means the whole input plane
    (``*_pool_everything``)."""

    kind: str  # "max" or "avg"
    window: tuple[int, int]  # (rows, cols)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Tag:
    """``tagN``: its output is its input; ``add_prevN`` and ``skipN`` refer back to it."""

    id: int


@dataclass(frozen=True)
class Skip:
    """``skipN``: its output is the output of the nearest ``tagN`` below it."""

    id: int


@dataclass(frozen=True)
class AddPrev:
    """``add_prevN``: the layer below plus the nearest ``tagN`` below. When the two differ
    in shape the output takes the larger size in every dimension and missing elements
    count as zero (``tt::add``), i.e. both are zero-padded at the end."""

    tag: int


@dataclass(frozen=True)
class FullyConnected:
    """``fc_``: the input flattened (k*nr*nc) times ``weights`` (inputs × outputs)."""

    weights: NDArray[np.float32]  # (num_inputs, num_outputs)
    bias: NDArray[np.float32] | None


Layer = Conv | Affine | Relu | Pool | Tag | Skip | AddPrev | FullyConnected


@dataclass(frozen=True)
class DlibNetwork:
    """A network read from a ``.dat``: its input layer and its layers, bottom to top.
    ``loss`` names the loss layer (metric learning for face recognition): at inference
    the network's output is the top layer's, unchanged."""

    input: InputRGB
    layers: tuple[Layer, ...]
    loss: str
