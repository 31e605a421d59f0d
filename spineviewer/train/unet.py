"""The paper's 2D U-Net (PyTorch; training dependency only).

Five encoder blocks with doubling filters (``base`` .. ``16 * base``), each two
3x3 convolution + batch-norm + ReLU layers, 2x2 max-pooling between blocks, a
transposed-convolution decoder and skip connections from the first four blocks.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet", "conv_flops", "count_parameters"]


def _block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``depth`` = 5 levels.

    Parameters
    ----------
    in_channels : int
        Input channels (1 for a greyscale slice).
    n_classes : int
        Output channels (logits).
    base : int
        Filters of the first block; block ``k`` has ``base * 2**k``.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 4, base: int = 32) -> None:
        super().__init__()
        widths = [base * 2**k for k in range(5)]
        self.base = base
        self.n_classes = n_classes
        self.encoders = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoders.append(_block(prev, w))
            prev = w
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(prev, w, 2, stride=2))
            self.decoders.append(_block(2 * w, w))
            prev = w
        self.head = nn.Conv2d(prev, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, enc in enumerate(self.encoders):
            x = enc(x)
            if k < len(self.encoders) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = up(x)
            x = dec(torch.cat([x, skip], dim=1))
        return self.head(x)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def conv_flops(model: nn.Module, shape: tuple[int, int] = (448, 320)) -> int:
    """Multiply-add FLOPs (2 per MAC) of all convolutions for one (1, 1, H, W) input."""
    total = 0

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.ConvTranspose2d):
            n_in = inp[0].shape[1]
            macs = inp[0].numel() // n_in * n_in * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            macs = out.numel() * k
        total += 2 * macs

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, *shape))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total
