"""Which face of a photo an enrolment (or a verify probe) uses, and which it reports.

A person photographed in front of others is still one clear subject (AWS IndexFaces
indexes the largest faces and reports the rest). Each face gets a *prominence*: its
width, discounted linearly by its distance from the photo's centre (nothing left at a
corner). The most prominent face is used when it is at least ``DOMINANCE`` times as
prominent as the next; otherwise the choice is ambiguous and refused.

The two constants were measured on lfw-dev (``benchmarks/enrolment.py``): of its 102
photos with more than one face, the rule picks the labelled person in 98 and calls 4
ambiguous, and never picks someone else; a margin of 1.2 resolves 101 but leaves no
room for photos less tidy than LFW's crops.

``face=`` (the API's query parameter) overrides the rule: ``single`` demands exactly
one face, ``largest`` takes the widest whatever the rest, ``x,y,w,h`` takes the face
that overlaps that box best (intersection over union at least 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from indexing.errors import LowQuality, MultipleFaces, NoFace
from indexing.pipeline import DetectedFace
from indexing.types import BBox

CENTRE_WEIGHT = 1.0
DOMINANCE = 1.5
MIN_BOX_IOU = 0.5

FaceMode = Literal["auto", "single", "largest"]


F = TypeVar("F", bound=DetectedFace)


class _Boxed(Protocol):
    @property
    def bbox(self) -> BBox: ...


B = TypeVar("B", bound=_Boxed)


def box_text(box: BBox) -> str:
    """``x,y,w,h``, as ``face=`` takes it."""
    b = box.as_dict()
    return f"{b['x']:g},{b['y']:g},{b['width']:g},{b['height']:g}"


class BadFaceSelector(ValueError):
    """A ``face=`` value that is neither a mode nor a box."""


@dataclass(frozen=True)
class FaceSelector:
    mode: FaceMode = "auto"
    box: BBox | None = None

    @classmethod
    def parse(cls, value: str | None) -> FaceSelector:
        """``auto`` (default), ``single``, ``largest`` or ``x,y,w,h`` in pixels."""
        text = (value or "auto").strip().lower()
        if text in ("auto", "single", "largest"):
            return cls(mode=text)  # type: ignore[arg-type]
        parts = text.split(",")
        try:
            x, y, w, h = (float(p) for p in parts)
        except ValueError:
            raise BadFaceSelector(
                f"face must be auto, single, largest or a box x,y,w,h; got {value!r}"
            ) from None
        if w <= 0 or h <= 0 or not all(math.isfinite(v) for v in (x, y, w, h)):
            raise BadFaceSelector("a face box needs a positive width and height")
        return cls(box=BBox(x, y, x + w, y + h))

    def as_text(self) -> str:
        if self.box is None:
            return self.mode
        return box_text(self.box)


@dataclass(frozen=True)
class FaceChoice(Generic[F]):
    face: F
    # Every other face found, most prominent first: reported, never used.
    others: list[F] = field(default_factory=list)


def prominence(box: BBox, width: int, height: int) -> float:
    half_diagonal = math.hypot(width, height) / 2
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    off_centre = math.hypot(cx - width / 2, cy - height / 2) / half_diagonal
    return box.width * max(0.0, 1.0 - CENTRE_WEIGHT * off_centre)


def iou(a: BBox, b: BBox) -> float:
    w = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    h = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def in_box(faces: Sequence[B], box: BBox) -> B:
    """The face (or detection) that overlaps ``box`` best; NoFace if none overlaps it by
    at least ``MIN_BOX_IOU``."""
    best = max(faces, key=lambda f: iou(f.bbox, box))
    if iou(best.bbox, box) < MIN_BOX_IOU:
        raise NoFace(
            f"no face found in the box {box_text(box)}: {len(faces)} face(s) elsewhere in the photo"
        )
    return best


def choose_face(faces: Sequence[F], selector: FaceSelector = FaceSelector()) -> FaceChoice[F]:
    """The face to use among ``faces`` (all of one photo)."""
    if not faces:
        raise NoFace()
    width, height = faces[0].frame
    ranked = sorted(faces, key=lambda f: prominence(f.bbox, width, height), reverse=True)
    if selector.box is not None:
        best = in_box(faces, selector.box)
        return FaceChoice(best, [f for f in ranked if f is not best])
    if selector.mode == "largest":
        best = max(faces, key=lambda f: f.bbox.width)
        return FaceChoice(best, [f for f in ranked if f is not best])
    if len(faces) == 1:
        return FaceChoice(faces[0], [])
    if selector.mode == "single":
        raise MultipleFaces(len(faces))
    first, second = ranked[0], ranked[1]
    p1 = prominence(first.bbox, width, height)
    p2 = prominence(second.bbox, width, height)
    if p1 < DOMINANCE * p2:
        raise MultipleFaces(
            len(faces),
            f"{len(faces)} faces found and none stands out (the two most prominent are "
            f"within {DOMINANCE:g}x of each other): crop the photo to one person, or pass "
            "face=largest or face=x,y,w,h",
        )
    return FaceChoice(first, ranked[1:])


def select_enrollment_face(
    faces: Sequence[F], selector: FaceSelector = FaceSelector(), *, check_quality: bool = True
) -> FaceChoice[F]:
    """The face an enrolment stores: :func:`choose_face`, then the quality gates."""
    choice = choose_face(faces, selector)
    if check_quality and choice.face.quality.problems:
        raise LowQuality(choice.face.quality.problems)
    return choice
