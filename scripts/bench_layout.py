"""Training-step time of the convolutional image encoders with NCHW input (PyTorch's default) and with the NHWC
(channels-last) input they make themselves (``mmexp.models.encoders.image.channels_last``).

Why: CPU max-pool and convolution kernels are much faster on NHWC tensors; this is the measurement behind that
choice (docs/performance.md). One torch thread, forward + backward + SGD step of the encoder alone, mean of 5 steps
after one warm-up step. Prints a markdown table.

    OMP_NUM_THREADS=1 python scripts/bench_layout.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from mmexp.models.encoders import image as image_module
from mmexp.models.encoders.image import CNNEncoder, ResNetEncoder


def step_ms(make: Callable[[], nn.Module], size: int, batch: int, nhwc: bool) -> float:
    """Mean ms of a training step; ``nhwc=False`` runs the same encoder with its layout change undone."""
    torch.manual_seed(0)
    encoder = make()
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.01)
    image = torch.rand(batch, 3, size, size)

    def step() -> None:
        optimizer.zero_grad()
        encoder(image).pooled.sum().backward()
        optimizer.step()

    layout = image_module.channels_last
    if not nhwc:
        image_module.channels_last = lambda image: image  # the encoders' forward looks it up at each call
    try:
        step()
        start = time.perf_counter()
        for _ in range(5):
            step()
        return (time.perf_counter() - start) / 5 * 1000
    finally:
        image_module.channels_last = layout


def main() -> None:
    torch.set_num_threads(1)
    print("| encoder | image px | batch | NCHW ms | NHWC ms |\n|---|---|---|---|---|")
    encoders: dict[str, Callable[[], nn.Module]] = {"cnn": CNNEncoder, "resnet": ResNetEncoder}
    for name, make in encoders.items():
        for size in (32, 64):
            for batch in (16, 64):
                nchw, nhwc = step_ms(make, size, batch, nhwc=False), step_ms(make, size, batch, nhwc=True)
                print(f"| {name} | {size} | {batch} | {nchw:.1f} | {nhwc:.1f} |")


if __name__ == "__main__":
    main()
