"""One generic Flax ResNet; named partials pick depth and stem.

Inputs are pixel-space images ``(N, H, W, 3)`` float32 in [0, 1]; the model
normalizes them with its `mean` and `std` first, so attacks and defenses never
see normalized values. Layer shapes follow torchvision (v1.5 bottlenecks:
stride on the 3x3 conv), so parameter counts match torchvision's exactly.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from stochjax.models import activations
from stochjax.models import conv as conv_lib

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STEMS = ("imagenet", "cifar")

ModuleDef = Any


class BasicBlock(nn.Module):
  """Two 3x3 convs with a residual; a 1x1 projection when shapes change."""

  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1
  activation: str = "relu"
  noise_sigma: float = 0.0
  expansion = 1

  @nn.compact
  def __call__(self, x, activation_keys=None):
    act = functools.partial(
      activations.apply, self, self.activation, keys=activation_keys
    )
    noise = functools.partial(
      activations.noise, self, sigma=self.noise_sigma, keys=activation_keys
    )
    strides = (self.strides, self.strides)
    y = noise(x, site="noise0")
    y = self.conv(self.filters, (3, 3), strides, padding=((1, 1), (1, 1)))(y)
    y = act(self.norm()(y), site=0)
    y = noise(y, site="noise1")
    y = self.conv(self.filters, (3, 3), padding=((1, 1), (1, 1)))(y)
    y = self.norm()(y)
    if x.shape[-1] != self.filters or self.strides != 1:
      x = self.conv(self.filters, (1, 1), strides, padding="VALID")(x)
      x = self.norm()(x)
    return act(x + y, site=1)


class BottleneckBlock(nn.Module):
  """1x1 -> 3x3 (strided) -> 1x1 with 4x expansion, torchvision v1.5."""

  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1
  activation: str = "relu"
  noise_sigma: float = 0.0
  expansion = 4

  @nn.compact
  def __call__(self, x, activation_keys=None):
    act = functools.partial(
      activations.apply, self, self.activation, keys=activation_keys
    )
    noise = functools.partial(
      activations.noise, self, sigma=self.noise_sigma, keys=activation_keys
    )
    out = self.filters * self.expansion
    strides = (self.strides, self.strides)
    y = noise(x, site="noise0")
    y = act(self.norm()(self.conv(self.filters, (1, 1))(y)), site=0)
    y = noise(y, site="noise1")
    y = self.conv(self.filters, (3, 3), strides, padding=((1, 1), (1, 1)))(y)
    y = act(self.norm()(y), site=1)
    y = noise(y, site="noise2")
    y = self.norm()(self.conv(out, (1, 1))(y))
    if x.shape[-1] != out or self.strides != 1:
      x = self.norm()(self.conv(out, (1, 1), strides, padding="VALID")(x))
    return act(x + y, site=2)


class ResNet(nn.Module):
  """ResNet for ``(N, H, W, 3)`` float32 images in [0, 1] -> ``(N, K)`` logits.

  Attributes:
    stage_sizes: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
    block_cls: `BasicBlock` or `BottleneckBlock`.
    num_classes: K.
    num_filters: width of the first stage (64 for the standard nets).
    stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool) or "cifar" (3x3/1, no
      pool).
    mean, std: per-channel normalization applied to the input.
    conv_general_dilated: the convolution primitive; the default keeps input
      gradients fast inside XLA:CPU loops (`stochjax.models.conv`).
    activation: a `stochjax.models.activations` spec: "relu", or SAP or
      k-WTA (defenses inside the network). A stochastic one draws from
      ``activation_keys`` (``(N,)`` per-example keys, as
      `stochjax.models.stochastic` passes them) or else from the
      ``"activation"`` RNG stream.
    noise: Random Self-Ensemble's noise layers (Liu et al., ECCV 2018),
      ``(init_sigma, inner_sigma)`` in normalized-input units: Gaussian
      noise on the normalized input, and before every convolution of a
      block's residual branch (the projection shortcut reads the block's
      input as it came), in training and at test, drawn as a stochastic
      activation is (`activations.noise`). ``(0, 0)``: none. The
      reference code (xuanqing94/RobustNet) uses (0.4, 0.1) on a VGG and
      ResNeXt; its VGG puts the "init" noise before the second
      convolution, a quirk this network does not copy.

  References:
    He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR
    2016. https://arxiv.org/abs/1512.03385
  """

  stage_sizes: Sequence[int]
  block_cls: ModuleDef
  num_classes: int = 1000
  num_filters: int = 64
  stem: str = "imagenet"
  mean: Sequence[float] = IMAGENET_MEAN
  std: Sequence[float] = IMAGENET_STD
  conv_general_dilated: Callable = conv_lib.conv_general_dilated
  activation: str = "relu"
  noise: tuple[float, float] = (0.0, 0.0)

  @nn.compact
  def __call__(self, x, train: bool = False, activation_keys=None):
    if self.stem not in STEMS:
      raise ValueError(f"Unknown stem {self.stem!r}; valid: {STEMS}.")
    activations.check(self.activation)
    stem_act = functools.partial(
      activations.apply, self, self.activation, keys=activation_keys,
      stem=True,
    )  # fmt: skip
    conv = functools.partial(
      nn.Conv, use_bias=False, conv_general_dilated=self.conv_general_dilated
    )
    norm = functools.partial(
      nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5
    )
    mean = jnp.asarray(self.mean, x.dtype).reshape(1, 1, 1, -1)
    std = jnp.asarray(self.std, x.dtype).reshape(1, 1, 1, -1)
    x = (x - mean) / std
    init_sigma, inner_sigma = self.noise
    if min(self.noise) < 0:
      raise ValueError(f"noise sigmas must be >= 0, got {self.noise}.")
    x = activations.noise(self, x, init_sigma, keys=activation_keys,
                          site="init_noise")  # fmt: skip
    if self.stem == "imagenet":
      x = conv(self.num_filters, (7, 7), (2, 2), padding=((3, 3), (3, 3)))(x)
      x = stem_act(norm()(x))
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    else:
      x = conv(self.num_filters, (3, 3), padding=((1, 1), (1, 1)))(x)
      x = stem_act(norm()(x))
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = self.block_cls(
          filters=self.num_filters * 2**i,
          strides=2 if i > 0 and j == 0 else 1,
          conv=conv,
          norm=norm,
          activation=self.activation,
          noise_sigma=inner_sigma,
        )(x, activation_keys)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


ResNet18 = functools.partial(
  ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock
)
ResNet34 = functools.partial(
  ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock
)
ResNet50 = functools.partial(
  ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckBlock
)
# Cohen et al.'s CIFAR-10 ResNets (He et al.'s 6n+2 family, 16/32/64 filters).
ResNet20 = functools.partial(
  ResNet, stage_sizes=(3, 3, 3), block_cls=BasicBlock, num_filters=16
)
ResNet110 = functools.partial(
  ResNet, stage_sizes=(18, 18, 18), block_cls=BasicBlock, num_filters=16
)
# A 3-stage, 16-filter CIFAR-size network (8 weighted layers) for CPU runs.
ResNet8 = functools.partial(
  ResNet, stage_sizes=(1, 1, 1), block_cls=BasicBlock, num_filters=16
)
# A two-stage, 8-filter network for tests and smoke runs.
ResNetTiny = functools.partial(
  ResNet, stage_sizes=(1, 1), block_cls=BasicBlock, num_filters=8
)

ARCHITECTURES = {
  "ResNet18": ResNet18,
  "ResNet34": ResNet34,
  "ResNet50": ResNet50,
  "ResNet8": ResNet8,
  "ResNet20": ResNet20,
  "ResNet110": ResNet110,
  "ResNetTiny": ResNetTiny,
}


def get_model(name: str, **kwargs) -> ResNet:
  """``get_model("ResNet18", num_classes=10, stem="cifar")``."""
  if name not in ARCHITECTURES:
    raise ValueError(
      f"Unknown model {name!r}; valid: {', '.join(sorted(ARCHITECTURES))}."
    )
  return ARCHITECTURES[name](**kwargs)
