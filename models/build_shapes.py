"""Train edgekit's shapes classifier in numpy and export it to ONNX.

The network is a small conv net (four 3x3 convolutions with ReLU, global max pooling, one fully
connected layer) trained from scratch on the procedural data of ``shapes.py`` with Adam and
softmax cross-entropy. Training adds batch normalisation after the last three convolutions and
starts the first from whitened patch filters; both are folded into plain Conv weights before
export. Forward and backward passes are written out by hand (convolution as im2col + matmul), so
the only dependencies are numpy, onnx (to write the file) and onnxruntime (to check the written
file against the numpy forward pass).

Usage:
    python models/build_shapes.py --out DIR [--seed 0] [--train N] [--epochs E] [--quiet]

writes DIR/shapes_cnn.onnx. The build is deterministic for a given seed on one machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# The matrices here are small: a second BLAS thread gains little on an idle machine and, on a
# busy one, makes every step wait for a core. A fixed thread count also keeps the bytes of the
# model independent of how many cores the machine has.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from numpy.lib.stride_tricks import as_strided

sys.path.insert(0, str(Path(__file__).resolve().parent))
import shapes

MODEL_FILENAME = "shapes_cnn.onnx"
OPSET = 17
IR_VERSION = 8
VALIDATION_SIZE = 600
VALIDATION_SEED_OFFSET = 10_000
MAX_ONNX_DIFF = 1e-4
WHITENING_IMAGES = 256
CALIBRATION_IMAGES = 512

# (input channels, output channels, stride) of each 3x3 convolution, padding 1.
CONV_LAYERS: tuple[tuple[int, int, int], ...] = (
    (3, 16, 2),
    (16, 32, 2),
    (32, 64, 2),
    (64, 64, 1),
)


# Batch normalisation after each conv except the first: the first layer starts from whitened
# filters (see ``whitening_filters``), so its outputs are already on a unit scale, and batch
# statistics over its large 32x32 maps would add a good part of a training step's cost.
BATCH_NORM: tuple[bool, ...] = (False, True, True, True)
BN_EPS = 1e-5
BN_MOMENTUM = 0.1


@dataclass
class Network:
    """The inference network that is exported: conv weights as [3*3*Cin, Cout] (im2col order)."""

    conv_w: list[np.ndarray]
    conv_b: list[np.ndarray]
    fc_w: np.ndarray  # [C, classes]
    fc_b: np.ndarray  # [classes]


@dataclass
class Trainable:
    """Training-time parameters: per-channel scale ``bn_gamma`` and shift ``bn_beta`` after each
    conv, normalised by batch statistics where ``BATCH_NORM`` says so; folded away on export."""

    conv_w: list[np.ndarray]
    bn_gamma: list[np.ndarray]
    bn_beta: list[np.ndarray]
    fc_w: np.ndarray
    fc_b: np.ndarray
    running_mean: list[np.ndarray]
    running_var: list[np.ndarray]

    def tensors(self) -> list[np.ndarray]:
        return [*self.conv_w, *self.bn_gamma, *self.bn_beta, self.fc_w, self.fc_b]

    def fold(self) -> Network:
        """Fold each batch norm (running statistics) into the conv before it."""
        conv_w, conv_b = [], []
        for batch_norm, w, gamma, beta, mean, var in zip(
            BATCH_NORM,
            self.conv_w,
            self.bn_gamma,
            self.bn_beta,
            self.running_mean,
            self.running_var,
            strict=True,
        ):
            if batch_norm:
                scale = gamma / np.sqrt(var + np.float32(BN_EPS))
                shift = beta - mean * scale
            else:
                scale, shift = gamma, beta
            conv_w.append((w * scale).astype(np.float32))
            conv_b.append(shift.astype(np.float32))
        return Network(conv_w, conv_b, self.fc_w.copy(), self.fc_b.copy())


def init_params(rng: np.random.Generator, num_classes: int) -> Trainable:
    conv_w, ones, zeros = [], [], []
    for cin, cout, _ in CONV_LAYERS:
        fan_in = 9 * cin
        conv_w.append((rng.normal(size=(fan_in, cout)) * np.sqrt(2.0 / fan_in)).astype(np.float32))
        ones.append(np.ones(cout, dtype=np.float32))
        zeros.append(np.zeros(cout, dtype=np.float32))
    channels = CONV_LAYERS[-1][1]
    fc_w = (rng.normal(size=(channels, num_classes)) * np.sqrt(1.0 / channels)).astype(np.float32)
    return Trainable(
        conv_w=conv_w,
        bn_gamma=[t.copy() for t in ones],
        bn_beta=[t.copy() for t in zeros],
        fc_w=fc_w,
        fc_b=np.zeros(num_classes, dtype=np.float32),
        running_mean=[t.copy() for t in zeros],
        running_var=[t.copy() for t in ones],
    )


def _out_size(size: int, stride: int) -> int:
    return (size + 2 - 3) // stride + 1


def im2col(x: np.ndarray, stride: int) -> np.ndarray:
    """Patches of a zero-padded NHWC tensor: [N*Ho*Wo, 3*3*C], rows (n, y, x), cols (ky, kx, c)."""
    n, h, w, c = x.shape
    ho, wo = _out_size(h, stride), _out_size(w, stride)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    sn, sh, sw, sc = padded.strides
    patches = as_strided(
        padded,
        shape=(n, ho, wo, 3, 3, c),
        strides=(sn, sh * stride, sw * stride, sh, sw, sc),
        writeable=False,
    )
    return patches.reshape(n * ho * wo, 9 * c)


def col2im_stride2(cols: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """Adjoint of ``im2col(x, 2)`` for even H and W: scatter patch gradients back onto NHWC.

    Sorted by the parity of the input pixel, every pixel receives a fixed set of taps (an even
    row only kernel row 1 of the output row above it, an odd row kernel row 2 of its own output
    row and kernel row 0 of the next), so each input pixel is written once instead of the
    patches being added one by one.
    """
    n, h, w, c = shape
    ho, wo = h // 2, w // 2
    taps = cols.reshape(n, ho, wo, 3, 3, c)
    out = np.empty((n, ho, 2, wo, 2, c), dtype=cols.dtype)
    for row_parity in (0, 1):
        if row_parity == 0:
            rows = taps[:, :, :, 1]
        else:
            rows = taps[:, :, :, 2].copy()
            rows[:, :-1] += taps[:, 1:, :, 0]
        out[:, :, row_parity, :, 0] = rows[:, :, :, 1]
        odd = rows[:, :, :, 2].copy()
        odd[:, :, :-1] += rows[:, :, 1:, 0]
        out[:, :, row_parity, :, 1] = odd
    return out.reshape(n, h, w, c)


def infer(net: Network, x_nhwc: np.ndarray) -> np.ndarray:
    """Logits [N, classes] of the inference network for a float32 NHWC batch."""
    h = x_nhwc
    for (_, cout, stride), w, b in zip(CONV_LAYERS, net.conv_w, net.conv_b, strict=True):
        n, hh, ww, _ = h.shape
        out = im2col(h, stride) @ w
        out += b
        np.maximum(out, 0.0, out=out)
        h = out.reshape(n, _out_size(hh, stride), _out_size(ww, stride), cout)
    return h.max(axis=(1, 2)) @ net.fc_w + net.fc_b


@dataclass
class Cache:
    cols: list[np.ndarray] = field(default_factory=list)
    in_shapes: list[tuple[int, int, int, int]] = field(default_factory=list)
    normalised: list[np.ndarray] = field(default_factory=list)  # batch-norm x-hat, [M, C]
    inv_std: list[np.ndarray] = field(default_factory=list)
    activations: list[np.ndarray] = field(default_factory=list)  # ReLU outputs, NHWC
    pooled: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))


def train_forward(
    params: Trainable, x_nhwc: np.ndarray, momentum: float = BN_MOMENTUM
) -> tuple[np.ndarray, Cache]:
    """Training-mode logits (batch statistics; running statistics are updated) and a cache."""
    cache = Cache()
    h = x_nhwc
    for k, (_, cout, stride) in enumerate(CONV_LAYERS):
        n, hh, ww, _ = h.shape
        cols = im2col(h, stride)
        z = cols @ params.conv_w[k]
        if BATCH_NORM[k]:
            mean = z.mean(axis=0)
            z -= mean
            var = np.mean(z * z, axis=0)
            inv_std = (1.0 / np.sqrt(var + np.float32(BN_EPS))).astype(z.dtype)
            z *= inv_std
            out = z * params.bn_gamma[k]
            params.running_mean[k] += np.float32(momentum) * (mean - params.running_mean[k])
            params.running_var[k] += np.float32(momentum) * (var - params.running_var[k])
            cache.normalised.append(z)
            cache.inv_std.append(inv_std)
        else:
            out = z  # the scale stays 1: only the shift (a plain bias) is trained
            cache.normalised.append(np.empty(0, dtype=z.dtype))
            cache.inv_std.append(np.empty(0, dtype=z.dtype))
        out += params.bn_beta[k]
        np.maximum(out, 0.0, out=out)
        cache.cols.append(cols)
        cache.in_shapes.append(h.shape)  # type: ignore[arg-type]
        h = out.reshape(n, _out_size(hh, stride), _out_size(ww, stride), cout)
        cache.activations.append(h)
    cache.pooled = h.max(axis=(1, 2))
    return cache.pooled @ params.fc_w + params.fc_b, cache


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean loss and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = float(-np.log(probs[np.arange(n), labels] + 1e-12).mean())
    grad = probs
    grad[np.arange(n), labels] -= 1.0
    return loss, (grad / n).astype(np.float32)


def train_backward(params: Trainable, cache: Cache, dlogits: np.ndarray) -> list[np.ndarray]:
    """Gradients in the order of ``Trainable.tensors()``."""
    layers = len(CONV_LAYERS)
    fc_dw = cache.pooled.T @ dlogits
    fc_db = dlogits.sum(axis=0)
    last = cache.activations[-1]
    dpooled = dlogits @ params.fc_w.T
    # Global max pooling: the gradient goes to the maximum (shared equally between ties).
    winners = last == cache.pooled[:, None, None, :]
    share = dpooled / np.maximum(winners.sum(axis=(1, 2)), 1).astype(np.float32)
    dh = winners * share[:, None, None, :]
    dw: list[np.ndarray] = [np.empty(0)] * layers
    dgamma: list[np.ndarray] = [np.empty(0)] * layers
    dbeta: list[np.ndarray] = [np.empty(0)] * layers
    for k in range(layers - 1, -1, -1):
        act = cache.activations[k]
        cin, cout, stride = CONV_LAYERS[k]
        dy = (dh * (act > 0.0)).reshape(-1, cout)
        dbeta[k] = dy.sum(axis=0)
        if BATCH_NORM[k]:
            xhat = cache.normalised[k]
            dgamma[k] = (dy * xhat).sum(axis=0)
            dxhat = dy * params.bn_gamma[k]
            dz = dxhat - dxhat.mean(axis=0) - xhat * ((dxhat * xhat).mean(axis=0))
            dz *= cache.inv_std[k]
        else:
            dgamma[k] = np.zeros_like(params.bn_gamma[k])
            dz = dy
        dw[k] = cache.cols[k].T @ dz
        if k == 0:
            break
        if stride == 1:
            # The input gradient of a stride-1 conv is a conv of the output gradient with the
            # kernel flipped and transposed: cheaper than scattering patches back.
            flipped = params.conv_w[k].reshape(3, 3, cin, cout)[::-1, ::-1]
            flipped = flipped.transpose(0, 1, 3, 2).reshape(9 * cout, cin)
            dh = (im2col(dz.reshape(act.shape), 1) @ flipped).reshape(cache.in_shapes[k])
        else:
            dh = col2im_stride2(dz @ params.conv_w[k].T, cache.in_shapes[k])
    return [*dw, *dgamma, *dbeta, fc_dw, fc_db]


class Adam:
    def __init__(self, tensors: list[np.ndarray], beta1: float = 0.9, beta2: float = 0.999) -> None:
        self.m = [np.zeros_like(t) for t in tensors]
        self.v = [np.zeros_like(t) for t in tensors]
        self.beta1, self.beta2 = beta1, beta2
        self.step_count = 0

    def step(self, tensors: list[np.ndarray], grads: list[np.ndarray], lr: float) -> None:
        self.step_count += 1
        b1, b2 = self.beta1, self.beta2
        correction = np.sqrt(1.0 - b2**self.step_count) / (1.0 - b1**self.step_count)
        step_size = np.float32(lr * correction)
        for t, g, m, v in zip(tensors, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            t -= step_size * m / (np.sqrt(v) + np.float32(1e-7))


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Label-preserving augmentation of an NHWC batch: flips, quarter turns, channel order."""
    if rng.random() < 0.5:
        batch = batch[:, :, ::-1]
    batch = np.rot90(batch, k=int(rng.integers(4)), axes=(1, 2))
    return np.ascontiguousarray(batch[..., rng.permutation(3)])


def to_nhwc(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images -> the model's normalised input, kept NHWC for training."""
    return np.ascontiguousarray(shapes.preprocess(images).transpose(0, 2, 3, 1))


def predict(net: Network, x_nhwc: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """Logits of the inference network, in batches."""
    return np.concatenate(
        [infer(net, x_nhwc[i : i + batch_size]) for i in range(0, len(x_nhwc), batch_size)]
    )


def whitening_filters(x_nhwc: np.ndarray, count: int) -> np.ndarray:
    """First-layer filters [27, count] from the principal components of the images' 3x3 patches.

    The leading ``count // 2`` components, scaled to unit variance, are used with both signs so
    that the ReLU after them passes edges of either contrast: the first layer starts as a set of
    decorrelated colour and edge detectors instead of noise, which makes training several times
    faster on this data.
    """
    patches = im2col(x_nhwc, 2).astype(np.float64)
    patches -= patches.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(patches.T @ patches / len(patches))
    keep = count // 2
    leading = eigenvectors[:, ::-1][:, :keep] / np.sqrt(eigenvalues[::-1][:keep] + 1e-3)
    return np.concatenate([leading, -leading], axis=1).astype(np.float32)


def calibrate_batch_norm(params: Trainable, x_nhwc: np.ndarray) -> None:
    """Replace the running statistics by exact ones over ``x_nhwc`` (one large batch)."""
    train_forward(params, x_nhwc, momentum=1.0)


def train(
    seed: int, train_size: int, epochs: int, batch_size: int, lr: float, log: bool
) -> tuple[Network, np.ndarray, np.ndarray, float]:
    """Train; return the folded network, the held-out set (NHWC, labels) and its accuracy."""
    start = time.perf_counter()
    images, y_train = shapes.make_dataset(train_size, seed)
    x_train = to_nhwc(images)
    val_images, y_val = shapes.make_dataset(VALIDATION_SIZE, seed + VALIDATION_SEED_OFFSET)
    x_val = to_nhwc(val_images)
    if log:
        print(
            f"data: {train_size} training and {VALIDATION_SIZE} held-out images "
            f"in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
    rng = np.random.default_rng([seed, 1])
    params = init_params(rng, len(shapes.LABELS))
    params.conv_w[0] = whitening_filters(x_train[:WHITENING_IMAGES], CONV_LAYERS[0][1])
    optimiser = Adam(params.tensors())
    steps_per_epoch = train_size // batch_size
    total_steps = steps_per_epoch * epochs
    accuracy = 0.0
    net = params.fold()
    for epoch in range(epochs):
        order = rng.permutation(train_size)
        losses = []
        for s in range(steps_per_epoch):
            idx = np.sort(order[s * batch_size : (s + 1) * batch_size])
            batch = augment(x_train[idx], rng)
            logits, cache = train_forward(params, batch)
            loss, dlogits = softmax_cross_entropy(logits, y_train[idx])
            grads = train_backward(params, cache, dlogits)
            progress = (epoch * steps_per_epoch + s) / total_steps
            optimiser.step(params.tensors(), grads, lr * 0.5 * (1.0 + np.cos(np.pi * progress)))
            losses.append(loss)
        if epoch == epochs - 1:
            calibrate_batch_norm(params, x_train[:CALIBRATION_IMAGES])
        net = params.fold()
        accuracy = float((predict(net, x_val).argmax(axis=1) == y_val).mean())
        if log:
            print(
                f"epoch {epoch + 1}/{epochs}  train loss {np.mean(losses):.4f}  "
                f"held-out accuracy {accuracy:.4f}  ({time.perf_counter() - start:.1f} s)",
                flush=True,
            )
    return net, x_val, y_val, accuracy


def to_onnx(net: Network, doc: str) -> bytes:
    """Serialise the trained network as an ONNX model (NCHW input, dynamic batch)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers = []
    nodes = []
    current = "image"
    final_size = shapes.IMAGE_SIZE
    for _, _, stride in CONV_LAYERS:
        final_size = _out_size(final_size, stride)
    for k, ((cin, cout, stride), w, b) in enumerate(
        zip(CONV_LAYERS, net.conv_w, net.conv_b, strict=True)
    ):
        # [ky, kx, cin, cout] -> ONNX [cout, cin, ky, kx]
        weight = np.ascontiguousarray(w.reshape(3, 3, cin, cout).transpose(3, 2, 0, 1))
        initializers += [
            numpy_helper.from_array(weight, f"conv{k + 1}.weight"),
            numpy_helper.from_array(b, f"conv{k + 1}.bias"),
        ]
        nodes += [
            helper.make_node(
                "Conv",
                [current, f"conv{k + 1}.weight", f"conv{k + 1}.bias"],
                [f"conv{k + 1}"],
                name=f"conv{k + 1}",
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                strides=[stride, stride],
            ),
            helper.make_node("Relu", [f"conv{k + 1}"], [f"relu{k + 1}"], name=f"relu{k + 1}"),
        ]
        current = f"relu{k + 1}"
    initializers += [
        numpy_helper.from_array(np.ascontiguousarray(net.fc_w.T), "fc.weight"),
        numpy_helper.from_array(net.fc_b, "fc.bias"),
    ]
    nodes += [
        # Global max pooling written as a MaxPool over the whole final map: the same numbers,
        # but MaxPool is an op that onnxruntime's quantizers know, GlobalMaxPool is not.
        helper.make_node(
            "MaxPool",
            [current],
            ["pool"],
            name="pool",
            kernel_shape=[final_size, final_size],
        ),
        helper.make_node("Flatten", ["pool"], ["features"], name="flatten", axis=1),
        helper.make_node(
            "Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1
        ),
    ]
    size = shapes.IMAGE_SIZE
    graph = helper.make_graph(
        nodes,
        "shapes_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(shapes.LABELS)])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edgekit",
        producer_version="0.1.0",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(
        model, {"labels": ",".join(shapes.LABELS), "input_contract": shapes.INPUT_CONTRACT}
    )
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def onnx_max_diff(model_bytes: bytes, net: Network, x_nhwc: np.ndarray) -> float:
    """Largest absolute logit difference between onnxruntime and the numpy forward pass."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    ort_logits = session.run(["logits"], {"image": x_nhwc.transpose(0, 3, 1, 2).copy()})[0]
    return float(np.abs(ort_logits - predict(net, x_nhwc)).max())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for shapes_cnn.onnx")
    parser.add_argument("--seed", type=int, default=0, help="data generator and training seed")
    parser.add_argument("--train", type=int, default=4000, help="training images")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=4e-3, help="peak Adam learning rate")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    log = not args.quiet
    net, x_val, y_val, accuracy = train(
        args.seed, args.train, args.epochs, args.batch, args.lr, log
    )
    doc = (
        f"edgekit shapes classifier ({', '.join(shapes.LABELS)}), trained from scratch on "
        f"models/shapes.py make_dataset(n={args.train}, seed={args.seed}) for {args.epochs} "
        f"epochs; held-out accuracy {accuracy:.4f} on make_dataset(n={VALIDATION_SIZE}, "
        f"seed={args.seed + VALIDATION_SEED_OFFSET})."
    )
    model_bytes = to_onnx(net, doc)
    diff = onnx_max_diff(model_bytes, net, x_val)
    if not diff < MAX_ONNX_DIFF:
        print(
            f"error: onnxruntime logits differ from the numpy forward pass by {diff:.3g} "
            f"(limit {MAX_ONNX_DIFF}); the export is wrong, not writing the model",
            file=sys.stderr,
        )
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / MODEL_FILENAME
    path.write_bytes(model_bytes)
    if log:
        predicted = predict(net, x_val).argmax(axis=1)
        recalls = "  ".join(
            f"{name} {(predicted[y_val == k] == k).mean():.3f}"
            for k, name in enumerate(shapes.LABELS)
        )
        print(f"held-out recall per class: {recalls}")
        print(
            f"wrote {path} ({len(model_bytes)} bytes): held-out accuracy {accuracy:.4f}, "
            f"onnxruntime vs numpy max |diff| {diff:.2e}, {time.perf_counter() - start:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
