"""The benchmarks' PyTorch models (torch is installed by hand, never required).

    pip install torch==2.13.0 && pip install --no-deps torchattacks==3.5.1

Each builder returns an eval-mode ``nn.Module`` on NCHW float32 input whose
architecture matches the stochjax model it is timed against.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class _Block(nn.Module):
  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.shortcut = nn.Sequential()
    if stride != 1 or cin != cout:
      self.shortcut = nn.Sequential(
        nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
      )

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class _ResNet18(nn.Module):
  """CIFAR stem (3x3 conv, no max-pool), as `stochjax.models.ResNet18`."""

  def __init__(self, num_classes: int = 10):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    layers, cin = [], 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
      layers += [_Block(cin, cout, stride), _Block(cout, cout, 1)]
      cin = cout
    self.layers = nn.Sequential(*layers)
    self.linear = nn.Linear(512, num_classes)

  def forward(self, x):
    out = self.layers(F.relu(self.bn1(self.conv1(x))))
    return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _frozen(net: nn.Module) -> nn.Module:
  net.eval()
  for p in net.parameters():
    p.requires_grad_(False)
  return net


def resnet18_cifar() -> nn.Module:
  torch.manual_seed(0)
  return _frozen(_ResNet18())


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
