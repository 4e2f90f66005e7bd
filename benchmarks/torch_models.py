"""The benchmarks' PyTorch models (torch is installed by hand, never required).

    pip install torch==2.13.0 && pip install --no-deps torchattacks==3.5.1

Each builder returns an eval-mode ``nn.Module`` on NCHW float32 input whose
architecture matches the stochjax model it is timed against.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Basic(nn.Module):
  """torchvision's ``BasicBlock`` (key names included)."""

  expansion = 1

  def __init__(self, cin: int, planes: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.downsample = None
    if stride != 1 or cin != planes:
      self.downsample = nn.Sequential(
        nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
      )

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
  """torchvision's ``Bottleneck`` (stride on the 3x3 convolution)."""

  expansion = 4

  def __init__(self, cin: int, planes: int, stride: int):
    super().__init__()
    out = planes * 4
    self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(out)
    self.downsample = None
    if stride != 1 or cin != out:
      self.downsample = nn.Sequential(
        nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out)
      )

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = F.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
  """torchvision's ResNet layout (``conv1``, ``bn1``, ``layer1``…, ``fc``)
  with the ImageNet stem (7x7/2 conv, 3x3/2 max-pool) or the CIFAR stem
  (3x3/1, no pool; also bearpaw's / Cohen's CIFAR nets): what
  ``stochjax.convert --source torchvision`` reads."""

  def __init__(self, block, stages, width: int, classes: int, stem: str):
    super().__init__()
    self.stem = stem
    k, s, p = (7, 2, 3) if stem == "imagenet" else (3, 1, 1)
    self.conv1 = nn.Conv2d(3, width, k, s, p, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    cin = width
    for i, n in enumerate(stages):
      blocks = []
      for j in range(n):
        blocks.append(block(cin, width * 2**i, 2 if i > 0 and j == 0 else 1))
        cin = width * 2**i * block.expansion
      setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
    self.num_stages = len(stages)
    self.fc = nn.Linear(cin, classes)

  def forward(self, x):
    x = F.relu(self.bn1(self.conv1(x)))
    if self.stem == "imagenet":
      x = self.maxpool(x)
    for i in range(self.num_stages):
      x = getattr(self, f"layer{i + 1}")(x)
    return self.fc(x.mean((2, 3)))


class Normalized(nn.Module):
  """``net((x - mean) / std)`` on [0, 1] NCHW input: the normalization a
  converted stochjax model applies inside."""

  def __init__(self, net: nn.Module, mean, std):
    super().__init__()
    self.net = net
    self.register_buffer("mean", torch.tensor(mean).reshape(1, 3, 1, 1))
    self.register_buffer("std", torch.tensor(std).reshape(1, 3, 1, 1))

  def forward(self, x):
    return self.net((x - self.mean) / self.std)


def _frozen(net: nn.Module) -> nn.Module:
  net.eval()
  for p in net.parameters():
    p.requires_grad_(False)
  return net


def resnet18_cifar() -> nn.Module:
  torch.manual_seed(0)
  return _frozen(ResNet(Basic, (2, 2, 2, 2), 64, 10, "cifar"))


def cnn8() -> nn.Module:
  """Two 3x3 convolutions (32, then 64 channels at stride 2) and a linear
  layer on 8x8x3 inputs, as the benchmark's Flax `Cnn8`."""
  torch.manual_seed(0)
  return _frozen(
    nn.Sequential(
      nn.Conv2d(3, 32, 3, 1, 1),
      nn.ReLU(),
      nn.Conv2d(32, 64, 3, 2, 1),
      nn.ReLU(),
      nn.Flatten(),
      nn.Linear(64 * 4 * 4, 10),
    )
  )


def digits_mlp(params):
  """`tests.mlp`'s tanh MLP with `params` (stochjax's weights) as an
  ``nn.Module`` on NCHW images."""
  w1, b1, w2, b2 = (
    torch.tensor(np.asarray(params[k]).T if k[0] == "w" else params[k])
    for k in ("w1", "b1", "w2", "b2")
  )
  first = torch.nn.Linear(*w1.shape[::-1])
  second = torch.nn.Linear(*w2.shape[::-1])
  with torch.no_grad():
    first.weight.copy_(w1)
    first.bias.copy_(b1)
    second.weight.copy_(w2)
    second.bias.copy_(b2)

  class Model(torch.nn.Module):
    """NCHW images -> logits, flattening in stochjax's (H, W, C) order."""

    def __init__(self):
      super().__init__()
      self.layers = torch.nn.Sequential(first, torch.nn.Tanh(), second)

    def forward(self, x):
      return self.layers(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))

  return Model().eval()


def digits_resnet18(
  images: np.ndarray,
  labels: np.ndarray,
  *,
  width: int = 16,
  epochs: int = 6,
  seed: int = 0,
) -> nn.Module:
  """A torchvision-layout ResNet-18 (CIFAR stem, first stage `width`)
  trained briefly with Adam on ``(N, H, W, 3)`` images in [0, 1], behind
  ImageNet normalization (what the converter's ``torchvision`` source
  assumes). Returns the frozen `Normalized` net; ``.net.state_dict()`` is
  the checkpoint to convert."""
  from stochjax.models import resnet  # noqa: PLC0415

  torch.manual_seed(seed)
  net = ResNet(Basic, (2, 2, 2, 2), width, 10, "cifar")
  model = Normalized(net, resnet.IMAGENET_MEAN, resnet.IMAGENET_STD)
  x = torch.tensor(images).permute(0, 3, 1, 2).contiguous()
  y = torch.tensor(labels, dtype=torch.long)
  optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
  generator = torch.Generator().manual_seed(seed)
  model.train()
  for _ in range(epochs):
    for batch in torch.randperm(len(y), generator=generator).split(64):
      optimizer.zero_grad()
      F.cross_entropy(model(x[batch]), y[batch]).backward()
      optimizer.step()
  return _frozen(model)
