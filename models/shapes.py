"""Procedural shapes dataset: the training and test data of edgekit's own image classifier.

Every image is drawn with numpy from a seeded generator, so the data set is owned by the project
and reproducible bit for bit: ``make_dataset(n, seed)`` always returns the same arrays.

Images are 64x64 RGB, uint8, HWC, one geometric shape each, six classes (``LABELS``): circle,
square, triangle, star, cross, ring. Size, position, rotation, vertex jitter, fill colour,
background (flat or a linear gradient), sensor noise, an occasional blur and an occasional
distractor line are all random, so the task is not trivial. Edges are antialiased: a pixel's
coverage is a one-pixel linear ramp of the shape's signed distance, evaluated on a sub-pixel grid
of ``_SUPERSAMPLE`` x ``_SUPERSAMPLE`` samples (1 by default: the ramp alone already gives smooth
edges, and rendering stays cheap enough to draw the training set at build time).

Input contract of the model trained on this data (``preprocess``):
    colour order RGB, layout NCHW, shape [N, 3, 64, 64], dtype float32,
    value = (pixel / 255 - 0.5) / 0.5, i.e. scale 1/255, mean 0.5, std 0.5 per channel,
    so pixels map to [-1, 1].
"""

from __future__ import annotations

import numpy as np

LABELS: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

IMAGE_SIZE = 64
MEAN = 0.5
STD = 0.5
INPUT_CONTRACT = (
    "image: float32 [N,3,64,64], NCHW, RGB, value = (pixel/255 - 0.5)/0.5 "
    "(scale 1/255, mean 0.5, std 0.5 per channel)"
)

_SUPERSAMPLE = 1
_MIN_RADIUS = 10.0
_MAX_RADIUS = 26.0


def _sample_grid(size: int, factor: int) -> np.ndarray:
    """Sub-pixel sample centres, in pixel units, as [size*factor, size*factor, 2] (x, y)."""
    ticks = (np.arange(size * factor, dtype=np.float32) + np.float32(0.5)) / np.float32(factor)
    xs, ys = np.meshgrid(ticks, ticks)
    return np.stack([xs, ys], axis=-1)


_GRID = _sample_grid(IMAGE_SIZE, _SUPERSAMPLE)
_PIXEL_GRID = _sample_grid(IMAGE_SIZE, 1)


def _coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Turn a supersampled signed distance (pixels, negative inside) into pixel coverage."""
    step = 1.0 / _SUPERSAMPLE
    sub = np.clip(0.5 - signed_distance / step, 0.0, 1.0)
    f = _SUPERSAMPLE
    rows, cols = sub.shape[0] // f, sub.shape[1] // f
    return sub.reshape(rows, f, cols, f).mean(axis=(1, 3))


def _polygon_sd(points: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Signed distance from points [..., 2] to a simple polygon [K, 2] (even-odd rule)."""
    # Edges run along axis 0 so that the reductions over edges are fast element-wise ones.
    px = np.ascontiguousarray(points[..., 0])[None]
    py = np.ascontiguousarray(points[..., 1])[None]
    expand = (slice(None),) + (None,) * (points.ndim - 1)
    ax, ay = vertices[:, 0], vertices[:, 1]
    ex, ey = np.roll(ax, -1) - ax, np.roll(ay, -1) - ay
    inv_len2 = (1.0 / (ex * ex + ey * ey))[expand]
    ax, ay, ex, ey = ax[expand], ay[expand], ex[expand], ey[expand]
    wx, wy = px - ax, py - ay
    t = np.clip((wx * ex + wy * ey) * inv_len2, 0.0, 1.0)
    dx, dy = wx - ex * t, wy - ey * t
    dist = np.sqrt((dx * dx + dy * dy).min(axis=0))
    straddles = (wy >= 0) != (wy >= ey)
    # The ray from the point towards +x crosses the edge; multiplied out to avoid dividing by ey.
    crosses = (wx * ey < ex * wy) == (ey > 0)
    inside = (np.count_nonzero(straddles & crosses, axis=0) % 2) == 1
    return np.where(inside, -dist, dist)


def _segment_sd(points: np.ndarray, a: np.ndarray, b: np.ndarray, half_width: float) -> np.ndarray:
    """Signed distance to a line segment of the given half width."""
    edge = b - a
    w = points - a
    t = np.clip((w @ edge) / float(edge @ edge), 0.0, 1.0)
    diff = w - t[..., None] * edge
    return np.sqrt((diff * diff).sum(-1)) - half_width


def _regular_vertices(count: int, radius: float, phase: float) -> np.ndarray:
    angles = phase + 2.0 * np.pi * np.arange(count) / count
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def _star_vertices(radius: float, inner_ratio: float, phase: float) -> np.ndarray:
    outer = _regular_vertices(5, radius, phase)
    inner = _regular_vertices(5, radius * inner_ratio, phase + np.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(10, 2)


def _cross_vertices(radius: float, arm: float) -> np.ndarray:
    r, a = radius, arm
    return np.array(
        [
            [a, a],
            [a, r],
            [-a, r],
            [-a, a],
            [-r, a],
            [-r, -a],
            [-a, -a],
            [-a, -r],
            [a, -r],
            [a, -a],
            [r, -a],
            [r, a],
        ]
    )


def _rotate(vertices: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return vertices @ np.array([[c, s], [-s, c]])


_Geometry = tuple[str, float, float] | np.ndarray


def _shape_outline(label: str, rng: np.random.Generator) -> tuple[np.ndarray, float, _Geometry]:
    """Pick a random instance of ``label``: its centre, its extent and its local geometry.

    The geometry is either ``("disc", radius, 0)``, ``("annulus", mid radius, half width)`` or
    the polygon's vertices [K, 2] relative to the centre, already jittered and rotated.
    """
    radius = rng.uniform(_MIN_RADIUS, _MAX_RADIUS)
    margin = 0.85 * radius
    centre = rng.uniform(margin, IMAGE_SIZE - margin, size=2)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    if label == "circle":
        r = radius * rng.uniform(0.8, 0.95)
        return centre, r, ("disc", r, 0.0)
    if label == "ring":
        inner = radius * rng.uniform(0.45, 0.7)
        return centre, radius, ("annulus", 0.5 * (radius + inner), 0.5 * (radius - inner))
    if label == "square":
        vertices = _regular_vertices(4, radius, np.pi / 4)
    elif label == "triangle":
        vertices = _regular_vertices(3, radius * 1.1, np.pi / 2)
    elif label == "star":
        vertices = _star_vertices(radius * 1.05, rng.uniform(0.38, 0.52), np.pi / 2)
    elif label == "cross":
        vertices = _cross_vertices(radius * 0.9, radius * rng.uniform(0.22, 0.36))
    else:
        raise ValueError(f"unknown shape label {label!r}; expected one of {LABELS}")
    vertices = vertices + rng.normal(0.0, 0.04 * radius, size=vertices.shape)
    vertices = _rotate(vertices, angle)
    return centre, float(np.sqrt((vertices * vertices).sum(-1)).max()), vertices


def _shape_coverage(label: str, rng: np.random.Generator) -> np.ndarray:
    """Coverage [64, 64] in [0, 1] of one randomly placed, rotated and sized shape."""
    centre, extent, geometry = _shape_outline(label, rng)
    # Only the shape's bounding box (plus a pixel for the antialiased edge) is evaluated.
    lo = np.clip(np.floor(centre - extent - 1.0), 0, IMAGE_SIZE).astype(int)
    hi = np.clip(np.ceil(centre + extent + 1.0), 0, IMAGE_SIZE).astype(int)
    f = _SUPERSAMPLE
    local = _GRID[lo[1] * f : hi[1] * f, lo[0] * f : hi[0] * f] - centre.astype(np.float32)
    if isinstance(geometry, tuple):
        kind, mid, half_width = geometry
        dist = np.sqrt(local[..., 0] ** 2 + local[..., 1] ** 2)
        sd = dist - mid if kind == "disc" else np.abs(dist - mid) - half_width
    else:
        sd = _polygon_sd(local, np.asarray(geometry, dtype=np.float32))
    coverage = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    coverage[lo[1] : hi[1], lo[0] : hi[0]] = _coverage(sd)
    return coverage


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 255.0, size=3)


def _background(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background image [64, 64, 3] float and its mean colour."""
    start = _random_colour(rng)
    if rng.random() < 0.5:
        image = np.broadcast_to(start, (IMAGE_SIZE, IMAGE_SIZE, 3)).copy()
        return image, start
    end = np.clip(start + rng.normal(0.0, 70.0, size=3), 0.0, 255.0)
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-12
    proj = (_PIXEL_GRID - IMAGE_SIZE / 2) @ direction / IMAGE_SIZE + 0.5
    t = np.clip(proj, 0.0, 1.0)[..., None]
    image = start * (1.0 - t) + end * t
    return image, 0.5 * (start + end)


def _contrasting_colour(rng: np.random.Generator, against: np.ndarray) -> np.ndarray:
    """A colour whose summed absolute RGB difference from ``against`` is at least 120."""
    colour = _random_colour(rng)
    for _ in range(20):
        if np.abs(colour - against).sum() >= 120.0:
            break
        colour = _random_colour(rng)
    return colour


def _blur(image: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur with edge replication."""
    padded = np.pad(image, ((1, 1), (0, 0), (0, 0)), mode="edge")
    image = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    padded = np.pad(image, ((0, 0), (1, 1), (0, 0)), mode="edge")
    return 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]


def _paint(image: np.ndarray, coverage: np.ndarray, colour: np.ndarray) -> np.ndarray:
    alpha = coverage[..., None]
    return image * (1.0 - alpha) + colour * alpha


def _distractor_coverage(rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(-8.0, IMAGE_SIZE + 8.0, size=2)
    b = rng.uniform(-8.0, IMAGE_SIZE + 8.0, size=2)
    if np.linalg.norm(b - a) < 20.0:
        b = IMAGE_SIZE - a
    half_width = rng.uniform(0.4, 1.2)
    return _coverage(_segment_sd(_GRID, a.astype(np.float32), b.astype(np.float32), half_width))


def render(label_index: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one image of class ``LABELS[label_index]``.

    Args:
        label_index: index into ``LABELS``.
        rng: the generator that decides every random property; the image depends only on its
            state, so the same state always yields the same pixels.

    Returns:
        uint8 array [64, 64, 3], RGB.
    """
    if not 0 <= label_index < len(LABELS):
        raise ValueError(f"label_index {label_index} out of range 0..{len(LABELS) - 1}")
    image, background_mean = _background(rng)
    fill = _contrasting_colour(rng, background_mean)
    shape = _shape_coverage(LABELS[label_index], rng)
    line_mode = rng.random()
    if line_mode < 0.15:
        image = _paint(image, _distractor_coverage(rng), _random_colour(rng))
    image = _paint(image, shape, fill)
    if line_mode >= 0.85:
        image = _paint(image, _distractor_coverage(rng), _random_colour(rng))
    if rng.random() < 0.3:
        image = _blur(image)
    image = image + rng.normal(0.0, rng.uniform(2.0, 10.0), size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def make_dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``n`` images (uint8 [n, 64, 64, 3], RGB) and labels (int64 [n]), class-balanced.

    The same ``(n, seed)`` always returns the same arrays.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % len(LABELS))
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = render(int(label), rng)
    return images, labels


def preprocess(images: np.ndarray) -> np.ndarray:
    """Map uint8 RGB images [n, 64, 64, 3] to the model input: float32 [n, 3, 64, 64] in [-1, 1]."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images shaped [n, H, W, 3], got {images.shape}")
    scaled = images.astype(np.float32) * np.float32(1.0 / 255.0)
    normalised = (scaled - np.float32(MEAN)) / np.float32(STD)
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))
