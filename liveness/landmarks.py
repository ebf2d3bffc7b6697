"""Indices into MediaPipe's 468-point face mesh and 71-point eye contour.

"Right" and "left" are the person's own sides: the right eye appears on the image's
left in an unmirrored camera frame.
"""

from __future__ import annotations

NUM_MESH_POINTS = 468

# Eye-aspect-ratio points p1..p6 (Soukupová & Čech): p1, p4 the corners, p2/p6 and
# p3/p5 the upper/lower lid pairs.
RIGHT_EYE_EAR = (33, 160, 158, 133, 153, 144)
LEFT_EYE_EAR = (362, 385, 387, 263, 373, 380)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
RIGHT_EYE_INNER, LEFT_EYE_INNER = 133, 362

# Inner lip: corners, and three upper/lower pairs across the opening.
MOUTH_CORNERS_INNER = (78, 308)
MOUTH_VERTICAL_PAIRS = ((82, 87), (13, 14), (312, 317))
# Outer lip corners: a smile widens these against the eye span.
MOUTH_CORNERS_OUTER = (61, 291)

NOSE_TIP = 1
FOREHEAD = 10
CHIN = 152
RIGHT_CHEEK = 234
LEFT_CHEEK = 454

# Points that stay visible while the head turns ±30° (eyes, brows, nose, mouth, inner
# cheeks). The outer face oval is left out: on a turn it becomes occluded and the model
# guesses it, which would blur the parallax signal with model prior.
PARALLAX_POINTS = (
    1,
    4,
    5,
    6,
    195,
    197,
    168,
    2,
    98,
    327,
    129,
    358,  # nose ridge, tip, wings
    33,
    133,
    160,
    158,
    153,
    144,
    362,
    263,
    385,
    387,
    373,
    380,  # eyes
    70,
    105,
    107,
    336,
    334,
    300,  # brows
    61,
    291,
    0,
    17,
    13,
    14,
    78,
    308,  # mouth
    50,
    280,
    205,
    425,
    116,
    345,
    123,
    352,  # cheeks
    152,
    175,
    199,
    10,
    151,
    9,  # chin and forehead midline
)

# The iris model's eye contour: 0..8 lower lid (corner to corner), 9..15 upper lid.
EYE_CONTOUR_LOWER = tuple(range(0, 9))
EYE_CONTOUR_UPPER = tuple(range(9, 16))
# Iris points: centre, then left/top/right/bottom of the iris circle.
IRIS_CENTER, IRIS_LEFT, IRIS_TOP, IRIS_RIGHT, IRIS_BOTTOM = range(5)
