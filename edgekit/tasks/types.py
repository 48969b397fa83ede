"""Results of the task heads: small frozen values, free of numpy arrays so they compare and print.

Coordinates follow one rule everywhere: ``x`` grows to the right, ``y`` grows downwards, and the
origin is the top-left corner of the image. A :class:`Box` says whether its numbers are pixels of
the original image or fractions of its width and height (``normalized=True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Point = tuple[float, float]
"""An ``(x, y)`` point, in the same units as the box it belongs to."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box from the top-left corner ``(x1, y1)`` to the bottom-right ``(x2, y2)``.

    Attributes:
        x1: Left edge.
        y1: Top edge.
        x2: Right edge.
        y2: Bottom edge.
        normalized: ``True`` when the coordinates are fractions of the image width (x) and
            height (y), ``False`` when they are pixels of the original image.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    normalized: bool = False

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> Point:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def contains(self, point: Point, margin: float = 0.0) -> bool:
        """Whether ``point`` lies inside the box grown by ``margin`` on every side."""
        x, y = point
        return (
            self.x1 - margin <= x <= self.x2 + margin and self.y1 - margin <= y <= self.y2 + margin
        )

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (both must use the same units)."""
        iw = min(self.x2, other.x2) - max(self.x1, other.x1)
        ih = min(self.y2, other.y2) - max(self.y1, other.y1)
        inter = max(0.0, iw) * max(0.0, ih)
        union = self.area + other.area - inter
        return inter / union if union > 0.0 else 0.0

    def to_pixels(self, width: int, height: int) -> Box:
        """This box in pixels of an image of ``width`` x ``height`` (a no-op for pixel boxes)."""
        if not self.normalized:
            return self
        return Box(self.x1 * width, self.y1 * height, self.x2 * width, self.y2 * height)

    def to_normalized(self, width: int, height: int) -> Box:
        """This box as fractions of an image of ``width`` x ``height``."""
        if self.normalized:
            return self
        return Box(
            self.x1 / width, self.y1 / height, self.x2 / width, self.y2 / height, normalized=True
        )


@dataclass(frozen=True)
class Detection:
    """One detected object.

    Attributes:
        box: Where it is.
        score: Confidence in ``[0, 1]``.
        label: Class index in the model's output.
        name: Human-readable class name, empty when the model has no labels.
        keypoints: Landmarks in the units of ``box`` (for faces: right eye, left eye, nose tip,
            mouth centre, right ear tragion, left ear tragion, as seen by the subject).
    """

    box: Box
    score: float
    label: int = 0
    name: str = ""
    keypoints: tuple[Point, ...] = field(default=())


Quad = tuple[Point, Point, Point, Point]
"""Four pixel corners, clockwise from the top-left one: top-left, top-right, bottom-right,
bottom-left as the text reads."""


@dataclass(frozen=True)
class TextBox:
    """A region of text found by a text detector, before recognition.

    Attributes:
        quad: The (possibly rotated) rectangle around the text, in pixels of the original image.
        score: Mean text probability inside the region.
    """

    quad: Quad
    score: float

    @property
    def box(self) -> Box:
        """The axis-aligned pixel box around ``quad``."""
        xs = [p[0] for p in self.quad]
        ys = [p[1] for p in self.quad]
        return Box(min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True)
class RecognizedText:
    """The text read from one cropped line.

    Attributes:
        text: The decoded characters.
        score: Mean probability of the emitted characters (0 when nothing was read).
    """

    text: str
    score: float


@dataclass(frozen=True)
class TextLine:
    """One line of text read from an image.

    Attributes:
        quad: The rectangle around the line, in pixels of the original image.
        text: The characters read.
        score: Recognition confidence (mean probability of the emitted characters).
        box_score: Detection confidence of the region.
    """

    quad: Quad
    text: str
    score: float
    box_score: float = 0.0

    @property
    def box(self) -> Box:
        """The axis-aligned pixel box around ``quad``."""
        return TextBox(self.quad, self.box_score).box


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech in an audio stream.

    Attributes:
        start_s: Start, in seconds from the first sample fed.
        end_s: End, in seconds from the first sample fed (exclusive).
        peak_prob: Highest speech probability seen inside the segment.
    """

    start_s: float
    end_s: float
    peak_prob: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Classification:
    """One class of a classifier's answer.

    Attributes:
        index: Class index in the model's output.
        label: Class name (the index as text when no labels were given).
        score: Probability (after softmax) or the raw model output, as the head was asked.
    """

    index: int
    label: str
    score: float


__all__ = [
    "Box",
    "Classification",
    "Detection",
    "Point",
    "Quad",
    "RecognizedText",
    "SpeechSegment",
    "TextBox",
    "TextLine",
]
