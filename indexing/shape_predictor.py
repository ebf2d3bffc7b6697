"""dlib's ensemble-of-regression-trees shape predictor in NumPy, batched over boxes.

Reproduces ``dlib::shape_predictor::operator()`` (``dlib/image_processing/
shape_predictor.h``) on the same ``.dat``: start from the mean shape in the box's unit
square; per cascade, fit the similarity from the mean shape to the current one, place
each feature pixel at its anchor point plus the transformed offset, map it into the
image by the box and round to the nearest pixel (outside the image it reads 0), take
the grey level ``(r + g + b) // 3``; every tree then walks its splits on "pixel
difference > threshold" and its leaf vector is added to the shape. dlib's arithmetic is
kept where it decides a rounding: offsets and shapes in float32 (leaf values added one
tree after another, in the file's order), the mapping into the image in float64, the
similarity computed in float64 and cast to float32. The points come out rounded to
whole pixels, as dlib returns them.

dlib's Umeyama fit goes through an SVD; in two dimensions the same least-squares
similarity has a closed form, and the two agree to float64 rounding, far below what the
float32 cast keeps. dlib's box transform comes from a pseudo-inverse; here it is the
exact ``left + u * (right - left)``, which differs from dlib's only by float64
rounding, so a point lands on the other side of a half pixel only when it sits within
~1e-13 px of it.

Boxes are evaluated together, every split of every tree at once. The cost is NumPy's:
~25 array operations per cascade. On the 2-core development machine one box takes
~1 ms and five ~2.5 ms, where dlib-bin's C++ takes ~0.5 ms a box, so the pipeline's
landmarks (:mod:`indexing.landmarks`) still call dlib; this module is the exact
reference in NumPy (and a reader of dlib's shape-predictor files). One instance serves
every thread: it only reads its arrays, and the per-batch-size cache it fills holds
the same value whichever thread writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from indexing.dlib_onnx.serialization import (
    DlibFormatError,
    decode_integers,
    floats_from_details,
    integer_offsets,
)
from indexing.types import RGBImage

# Batches up to this many boxes keep their repeated thresholds (0.2 MB per box).
_CACHED_BATCH_SIZES = 16


@dataclass(frozen=True)
class ShapeModel:
    """The arrays of a ``shape_predictor`` .dat, as dlib stores them.

    ``initial_shape``: (parts, 2) float32 in the box's unit square. Per cascade ``c``
    and tree ``t``: ``split_idx[c, t, node, 0/1]`` the two feature pixels a split
    compares, ``split_thresh[c, t, node]``, ``leaf_values[c, t, leaf, 2 * parts]``
    (a complete tree of ``depth`` levels: ``2**depth - 1`` splits in breadth-first order,
    ``2**depth`` leaves). ``anchor_idx[c, pixel]`` and ``deltas[c, pixel, 2]`` place each
    feature pixel relative to a point of the shape.
    """

    initial_shape: NDArray[np.float32]
    split_idx: NDArray[np.intp]
    split_thresh: NDArray[np.float32]
    leaf_values: NDArray[np.float32]
    anchor_idx: NDArray[np.intp]
    deltas: NDArray[np.float32]

    @property
    def depth(self) -> int:
        return int(self.split_thresh.shape[2] + 1).bit_length() - 1


class _Integers:
    """A cursor over the file's integers (a ``float_details`` is two of them)."""

    def __init__(self, data: bytes) -> None:
        self.offsets = integer_offsets(data)
        self.values = decode_integers(data, self.offsets, "shape_predictor")
        self.at = 0

    def error(self, message: str) -> DlibFormatError:
        at = self.offsets[min(self.at, len(self.offsets) - 1)] if len(self.offsets) else 0
        return DlibFormatError(message, int(at))

    def take(self, count: int, what: str) -> NDArray[np.int64]:
        if count < 0 or self.at + count > len(self.values):
            raise self.error(f"truncated: {what} needs {count} integers")
        chunk = self.values[self.at : self.at + count]
        self.at += count
        return chunk

    def one(self, what: str) -> int:
        return int(self.take(1, what)[0])

    def column(self, what: str) -> NDArray[np.float32]:
        """A ``matrix<float,0,1>``: rows and columns (negated in dlib's current
        format), then the values."""
        nr, nc = abs(self.one(what + " rows")), abs(self.one(what + " columns"))
        if nc != 1:
            raise self.error(f"{what} is {nr}x{nc}, expected a column")
        return _floats(self.take(2 * nr, what)).astype(np.float32)


def _floats(pairs: NDArray[np.int64]) -> NDArray[np.float64]:
    return floats_from_details(pairs[0::2], pairs[1::2])


def _read_forest(ints: _Integers, n_values: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """One cascade's trees: splits (trees, nodes, 4) as idx1, idx2 and the threshold's
    two integers, and leaf values (trees, leaves, n_values). Every tree must have the
    first one's layout, as dlib's trainer makes them."""
    n_trees = ints.one("trees")
    first = ints.at
    n_splits = ints.one("splits")
    ints.take(4 * n_splits, "splits")
    n_leaves = ints.one("leaves")
    ints.at = first
    if n_trees < 1 or n_leaves != n_splits + 1 or n_leaves & (n_leaves - 1):
        raise ints.error(f"{n_trees} trees, the first with {n_splits} splits, {n_leaves} leaves")
    leaf_len = 2 + 2 * n_values
    tree_len = 2 + 4 * n_splits + n_leaves * leaf_len
    trees = ints.take(n_trees * tree_len, "trees").reshape(n_trees, tree_len)
    leaves = trees[:, 2 + 4 * n_splits :].reshape(n_trees, n_leaves, leaf_len)
    if (
        (trees[:, 0] != n_splits).any()
        or (trees[:, 1 + 4 * n_splits] != n_leaves).any()
        or (np.abs(leaves[..., 0]) != n_values).any()
        or (np.abs(leaves[..., 1]) != 1).any()
    ):
        raise ints.error("trees of one cascade differ in size, or leaves from the shape")
    splits = trees[:, 1 : 1 + 4 * n_splits].reshape(n_trees, n_splits, 4)
    values = _floats(leaves[..., 2:].reshape(-1)).reshape(n_trees, n_leaves, n_values)
    return splits, values


def read_shape_predictor(data: bytes) -> ShapeModel:
    """Parse the bytes of ``dlib::serialize(shape_predictor)``: version 1, the initial
    shape, the forests (a vector per cascade of trees, each its splits then its leaf
    values), then per cascade the feature pixels' anchor indices and offsets. Trees
    must be complete and alike (true of dlib's trainer)."""
    ints = _Integers(data)
    if (version := ints.one("shape_predictor version")) != 1:
        raise ints.error(f"shape_predictor version {version}, expected 1")
    initial = ints.column("initial_shape")
    if initial.size == 0 or initial.size % 2:
        raise ints.error(f"initial_shape has {initial.size} values")

    forests = [_read_forest(ints, initial.size) for _ in range(ints.one("cascades"))]
    anchors = [ints.take(ints.one("anchors"), "anchors") for _ in range(ints.one("cascades"))]
    deltas = [
        _floats(ints.take(4 * ints.one("deltas"), "deltas")).reshape(-1, 2)
        for _ in range(ints.one("cascades"))
    ]
    if ints.at != len(ints.values):
        raise ints.error("data after the shape predictor")
    if not (len(forests) == len(anchors) == len(deltas)):
        raise ints.error("cascade counts of forests, anchors and deltas differ")
    try:
        splits = np.stack([f[0] for f in forests])  # (c, t, node, 4)
        model = ShapeModel(
            initial_shape=initial.reshape(-1, 2),
            split_idx=splits[..., :2].astype(np.intp),
            split_thresh=_floats(splits[..., 2:].reshape(-1))
            .reshape(splits.shape[:3])
            .astype(np.float32),
            leaf_values=np.stack([f[1] for f in forests]).astype(np.float32),
            anchor_idx=np.stack(anchors).astype(np.intp),
            deltas=np.stack(deltas).astype(np.float32),
        )
    except ValueError:
        raise ints.error("cascades differ in trees or feature pixels") from None
    n_pixels = model.anchor_idx.shape[1]
    if (model.split_idx < 0).any() or model.split_idx.max() >= n_pixels:
        raise ints.error("a split names a feature pixel that does not exist")
    if (model.anchor_idx < 0).any() or model.anchor_idx.max() >= len(model.initial_shape):
        raise ints.error("a feature pixel is anchored to a missing part")
    return model


def dlib_rects(boxes: NDArray[np.floating]) -> NDArray[np.float64]:
    """(n, 4) boxes (left, top, right, bottom), right/bottom exclusive, to the integer
    ``dlib.rectangle`` corners a caller of dlib would pass: rounded, and the last pixel
    inclusive."""
    r = np.round(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    r[:, 2:] -= 1
    return r


class ShapePredictor:
    """``predict(image, boxes)`` gives dlib's points for every box in one pass.

    Sampling runs boxes first, (boxes, 2, pixels); the trees run boxes last, (splits or
    trees, boxes), so that one take gathers a row per split or per tree for all boxes
    and the sum over trees runs down rows."""

    def __init__(self, model: ShapeModel) -> None:
        self.model = model
        m = model
        n_cascades, n_trees, n_nodes = m.split_thresh.shape
        n_leaves = m.leaf_values.shape[2]
        n_parts = len(m.initial_shape)
        self._initial = m.initial_shape.reshape(-1)
        # The similarity's a = s·cos, b = s·sin as shape @ fit: the initial shape's
        # centred points over n·variance (the current shape needs no centring: the
        # centred initial points sum to zero).
        initial = m.initial_shape.astype(np.float64)
        centred = initial - initial.mean(axis=0)
        fit = np.zeros((2 * n_parts, 2))
        fit[0::2, 0], fit[1::2, 0] = centred[:, 0], centred[:, 1]
        fit[0::2, 1], fit[1::2, 1] = -centred[:, 1], centred[:, 0]
        self._fit = fit / (centred**2).sum()
        # Per cascade, for (boxes, 2, pixels) arrays: the offsets' x, to multiply
        # [a, b], their y with the sign of -b·dy, to multiply [b, a], and the shape
        # columns of the anchors.
        dx, dy = m.deltas[..., 0], m.deltas[..., 1]
        self._dx = dx[:, None, None, :]
        self._dy = np.stack([-dy, dy], axis=1)[:, None]
        self._anchor_rows = np.stack([2 * m.anchor_idx, 2 * m.anchor_idx + 1], axis=1)
        # Both pixels of every split, node-major (row k * trees + t: node k of tree t),
        # so a tree's outcomes are one column of a (nodes, trees · boxes) array.
        by_node = m.split_idx.transpose(0, 2, 1, 3).reshape(n_cascades, -1, 2)
        self._pairs = np.concatenate([by_node[..., 0], by_node[..., 1]], axis=1)
        # Grey levels are whole numbers, so "difference > thresh" is "difference >
        # floor(thresh)", in int16 (a threshold beyond ±255 decides every split alike).
        thresh = m.split_thresh.transpose(0, 2, 1).reshape(n_cascades, -1, 1)
        thresh = np.where(np.isnan(thresh), 256, np.clip(np.floor(thresh), -256, 256))
        self._thresh = thresh.astype(np.int16)
        # The thresholds repeated for each box (boxes last, so that the comparison
        # runs over contiguous memory), made on first use for each batch size.
        self._thresh_for: dict[int, NDArray[np.int16]] = {}
        # A tree's split outcomes as the bits of one number (node k: bit k) and the
        # leaf that number leads to.
        self._bit_weights = (2.0 ** np.arange(n_nodes)).astype(np.float32)
        self._leaf_of = _leaf_table(m.depth)
        self._tree_leaf0 = (np.arange(n_trees) * n_leaves)[:, None]
        self._leaves = m.leaf_values.reshape(n_cascades, n_trees * n_leaves, -1)

    @classmethod
    def load(cls, path: str | Path) -> ShapePredictor:
        return cls(read_shape_predictor(Path(path).read_bytes()))

    def predict(self, image: RGBImage, boxes: NDArray[np.floating]) -> NDArray[np.float32]:
        """dlib's points (n, parts, 2), whole pixels as float32, for ``boxes`` (n, 4):
        (left, top, right, bottom) with right/bottom exclusive, rounded as
        :func:`dlib_rects` does. ``image`` is RGB (h, w, 3) or grey (h, w), uint8."""
        if image.ndim == 3 and image.shape[2] != 3 or image.ndim not in (2, 3):
            raise ValueError(f"expected an RGB or grey image, got shape {image.shape}")
        rects = dlib_rects(boxes)
        n = len(rects)
        n_values = len(self._initial)
        if n == 0:
            return np.zeros((0, n_values // 2, 2), np.float32)
        height, width = image.shape[:2]
        pixels = image.reshape(height * width, -1)
        channels = pixels.shape[1]
        # dlib's grey level of an RGB pixel is (r + g + b) // 3. In float32 1/3 rounds
        # up, so a multiple of 3 never falls below its quotient, nor anything else
        # reaches the next one: floor(sum · 1/3) is exact.
        channel_sum = np.ones(channels, np.float32)
        grey_scale = np.float32(1 / channels)
        # The box's affine as (boxes, 2, 1); +0.5 then floor rounds as dlib's
        # conversion to an integer point does.
        origin = rects[:, :2, None] + 0.5
        size = (rects[:, 2:] - rects[:, :2])[:, :, None]
        bounds = np.array([width, height], np.uintp)[:, None]

        # Grey levels per pixel and box, the boxes padded to a power of two: a take
        # then copies rows of 2, 4, 8... bytes, which NumPy does much faster.
        n_padded = 1 << (n - 1).bit_length()
        thresh = self._thresholds(n_padded)
        n_cascades, n_pixels = self._anchor_rows.shape[0], self._anchor_rows.shape[2]
        xy = np.empty((n, 2, n_pixels), np.intp)
        grey = np.zeros((n_pixels, n_padded), np.int16)
        above = np.empty((thresh.shape[1], n_padded), np.float32)
        shape = np.broadcast_to(self._initial, (n, n_values)).copy()
        for c in range(n_cascades):
            ab = (shape @ self._fit).astype(np.float32)[:, :, None]  # (n, 2, 1): a, b
            # (a·dx + (-b)·dy, b·dx + a·dy) + anchor, each step rounded to float32,
            # then into the image in float64 (exact: float32 times a whole number).
            points = ab * self._dx[c]
            points += ab[:, ::-1] * self._dy[c]
            points += np.take(shape, self._anchor_rows[c], axis=1)
            at = points * size
            at += origin
            np.floor(at, out=xy, casting="unsafe")
            inside = xy.view(np.uintp) < bounds
            index = xy[:, 1] * width
            index += xy[:, 0]
            total = np.take(pixels, index, axis=0, mode="clip") @ channel_sum
            total *= inside[:, 0] & inside[:, 1]  # outside the image reads 0
            total *= grey_scale
            np.floor(total.T, out=grey[:, :n], casting="unsafe")

            # Every split of every tree at once (node-major rows, boxes last) ...
            pair = np.take(grey, self._pairs[c], axis=0)
            second = pair[len(above) :]
            second += thresh[c]
            np.greater(pair[: len(above)], second, out=above, casting="unsafe")
            # ... the outcomes of a tree's nodes as one number, the leaf it leads to,
            code = self._bit_weights @ above.reshape(len(self._bit_weights), -1)
            code = code.reshape(-1, n_padded)[:, :n].astype(np.intp)
            leaf = np.take(self._leaf_of, code)
            leaf += self._tree_leaf0
            # ... and the leaves added to the shape tree after tree. A reduction over
            # the outer axis adds row after row, elementwise: the same float32 sums
            # as dlib's loop over trees.
            values = np.take(self._leaves[c], leaf, axis=0).reshape(len(leaf), -1)
            values[0] += shape.reshape(-1)
            shape = np.add.reduce(values, axis=0).reshape(n, -1)

        at = shape.reshape(n, -1, 2) * size.transpose(0, 2, 1)
        at += origin.transpose(0, 2, 1)
        return np.floor(at).astype(np.float32)

    def _thresholds(self, n: int) -> NDArray[np.int16]:
        thresh = self._thresh_for.get(n)
        if thresh is None:
            thresh = np.repeat(self._thresh, n, axis=2)
            if n <= _CACHED_BATCH_SIZES:
                self._thresh_for[n] = thresh  # the same whichever thread stores it
        return thresh


def _leaf_table(depth: int) -> NDArray[np.intp]:
    """For each set of split outcomes of a complete tree (bit k: node k went left), the
    leaf dlib's walk ends in."""
    n_nodes = 2**depth - 1
    codes = np.arange(2**n_nodes)
    node = np.zeros_like(codes)
    for _ in range(depth):
        left = (codes >> node) & 1
        node = 2 * node + 2 - left
    return node - n_nodes
