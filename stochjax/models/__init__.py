"""Flax ResNets with normalization inside, and the `logits_fn` boundary."""

from stochjax.models.classifier import classifier
from stochjax.models.conv import (
  conv_general_dilated,
  explicit_conv,
  explicit_vjp_conv,
)
from stochjax.models.resnet import (
  ARCHITECTURES,
  IMAGENET_MEAN,
  IMAGENET_STD,
  BasicBlock,
  BottleneckBlock,
  ResNet,
  ResNet8,
  ResNet18,
  ResNet20,
  ResNet34,
  ResNet50,
  ResNet110,
  ResNetTiny,
  get_model,
)
from stochjax.models.store import load, save

__all__ = [
  "ARCHITECTURES",
  "IMAGENET_MEAN",
  "IMAGENET_STD",
  "BasicBlock",
  "BottleneckBlock",
  "ResNet",
  "ResNet18",
  "ResNet20",
  "ResNet34",
  "ResNet8",
  "ResNet50",
  "ResNet110",
  "ResNetTiny",
  "classifier",
  "conv_general_dilated",
  "explicit_conv",
  "explicit_vjp_conv",
  "get_model",
  "load",
  "save",
]
