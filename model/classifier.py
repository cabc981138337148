"""The digits classifier network: raw 0..16 pixels in, class probabilities out."""

from __future__ import annotations

from typing import Final

import torch
from torch import nn

from model.digits import CLASSES, PIXEL_MAX

#: Side of the square digit image; 8 x 8 = 64 pixels.
IMAGE_SIDE: Final = 8


class DigitsClassifier(nn.Module):
    """A two-layer CNN over the 8x8 image, normalising its input itself.

    Clients send the raw pixel values (0..16) as ``float32 [batch, 64]``; the scaling happens
    inside the network so that no client can get it wrong. ``forward`` returns softmax
    probabilities (what the service serves); ``logits`` is what training optimises.
    """

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        # Attributes rather than module globals, so TorchScript can compile the methods.
        self.pixel_max = float(PIXEL_MAX)
        self.side = IMAGE_SIDE
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(32 * (IMAGE_SIDE // 2) ** 2, 64),
            nn.ReLU(),
            nn.Linear(64, CLASSES),
        )

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores of ``pixels`` (``float32 [batch, 64]``, raw 0..16)."""
        images = (pixels / self.pixel_max).reshape(-1, 1, self.side, self.side)
        scores: torch.Tensor = self.head(self.features(images))
        return scores

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``float32 [batch, 10]`` of ``pixels`` (``float32 [batch, 64]``)."""
        return torch.softmax(self.logits(pixels), dim=1)
