"""Writes the small PyTorch checkpoints the converter tests read.

Needs torch (not a stochjax dependency): ``pip install torch==2.13.0``, then

    python tools/make_torch_fixtures.py tests/fixtures/torch

CI never runs this; it reads the committed outputs. Each checkpoint is a
width-4 ResNet with the real key names of its source, random weights and
random BatchNorm statistics, saved the way its source saves it; expected.npz
holds inputs and the torch logits (eval mode, input normalized as the
stochjax model does inside).
"""

import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.torch_models import Basic, Bottleneck, ResNet  # noqa: E402

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def randomize(model, generator):
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5, generator=generator)
        m.bias.normal_(0, 0.1, generator=generator)
        m.running_mean.normal_(0, 0.1, generator=generator)
        m.running_var.uniform_(0.5, 1.5, generator=generator)
        m.num_batches_tracked.fill_(7)
  return model.eval()


def logits(model, x, mean_std):
  mean, std = (torch.tensor(v).reshape(1, 3, 1, 1) for v in mean_std)
  nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
  with torch.no_grad():
    return model((nchw - mean) / std).numpy()


def check_reader(out):
  """stochjax's torch-free reader equals torch.load, bit for bit."""
  from stochjax.torch_io import reader  # noqa: PLC0415

  def same(ours, theirs):
    if isinstance(theirs, torch.Tensor):
      np.testing.assert_array_equal(ours, theirs.numpy())
    elif isinstance(theirs, dict):
      assert set(ours) == set(theirs)
      for k in theirs:
        same(ours[k], theirs[k])
    elif isinstance(theirs, list | tuple):
      for a, b in zip(ours, theirs, strict=True):
        same(a, b)
    else:
      assert ours == theirs, (ours, theirs)

  for name in sorted(os.listdir(out)):
    if name != "expected.npz":
      path = os.path.join(out, name)
      same(reader.read(path), torch.load(path, weights_only=True))
      print(f"{name}: reader == torch.load")


def main(out):
  os.makedirs(out, exist_ok=True)
  torch.manual_seed(0)
  g = torch.Generator().manual_seed(0)
  rng = np.random.default_rng(0)
  expected = {}

  def record(name, model, size, mean_std):
    x = rng.uniform(0, 1, (2, size, size, 3)).astype(np.float32)
    expected[f"{name}/inputs"] = x
    expected[f"{name}/logits"] = logits(model, x, mean_std)

  # torchvision ResNet-50: a plain state_dict, zip format.
  net = randomize(ResNet(Bottleneck, (3, 4, 6, 3), 4, 10, "imagenet"), g)
  torch.save(net.state_dict(), f"{out}/torchvision_resnet50_w4.pth")
  record("torchvision_resnet50_w4", net, 48, IMAGENET)

  # Cohen et al. ImageNet ResNet-50: legacy format, "1.module." keys, SGD
  # momentum buffers in the optimizer state.
  net = randomize(ResNet(Bottleneck, (3, 4, 6, 3), 4, 10, "imagenet"), g)
  sgd = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
  net.train()
  net(torch.rand(2, 3, 48, 48, generator=g)).sum().backward()
  sgd.step()
  net = randomize(net, g)
  state = {f"1.module.{k}": v for k, v in net.state_dict().items()}
  torch.save(
    {"epoch": 90, "arch": "resnet50", "state_dict": state,
     "optimizer": sgd.state_dict()},
    f"{out}/cohen_resnet50_w4_legacy.pth.tar",
    _use_new_zipfile_serialization=False,
  )  # fmt: skip
  record("cohen_resnet50_w4_legacy", net, 48, IMAGENET)

  # Cohen et al. CIFAR ResNet (110's family, here 20 layers): "1." keys.
  net = randomize(ResNet(Basic, (3, 3, 3), 4, 10, "cifar"), g)
  state = {f"1.{k}": v for k, v in net.state_dict().items()}
  torch.save(
    {"epoch": 90, "arch": "cifar_resnet110", "state_dict": state},
    f"{out}/cohen_cifar_resnet20_w4_legacy.pth.tar",
    _use_new_zipfile_serialization=False,
  )
  record("cohen_cifar_resnet20_w4_legacy", net, 32, CIFAR)

  # The paper's ImageNette Lightning checkpoint: model.0 = normalization
  # buffers, model.1 = ResNet-34 with a 10-class head.
  net = randomize(ResNet(Basic, (3, 4, 6, 3), 4, 10, "imagenet"), g)
  mean_std = ((0.45, 0.44, 0.40), (0.25, 0.24, 0.26))  # Distinct from ImageNet.
  state = {
    "model.0.mean": torch.tensor(mean_std[0]).reshape(3, 1, 1),
    "model.0.std": torch.tensor(mean_std[1]).reshape(3, 1, 1),
  } | {f"model.1.{k}": v for k, v in net.state_dict().items()}
  torch.save(
    {"epoch": 53, "global_step": 1802, "pytorch-lightning_version": "1.6.5",
     "state_dict": state, "hyper_parameters": {"lr": 0.001, "wd": 0.01}},
    f"{out}/imagenette_resnet34_w4.ckpt",
  )  # fmt: skip
  record("imagenette_resnet34_w4", net, 48, mean_std)

  np.savez_compressed(f"{out}/expected.npz", **expected)
  check_reader(out)
  print(f"wrote {sorted(os.listdir(out))} with torch {torch.__version__}")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/torch")
