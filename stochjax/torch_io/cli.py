"""The converter CLI: a PyTorch ResNet checkpoint to a stochjax model
folder, without torch.

    python -m stochjax.convert resnet50-0676ba61.pth weights/resnet50 \\
        --arch ResNet50 --source torchvision
    python -m stochjax.convert noise_0.50/checkpoint.pth.tar weights/cohen_050 \\
        --arch ResNet50 --source cohen
    python -m stochjax.convert epoch53-acc0.969.ckpt weights/imagenette_clean \\
        --arch ResNet34 --source imagenette

Then ``model, variables = stochjax.models.load(OUT_DIR)``. The file is read
with a restricted unpickler (`stochjax.torch_io.reader`): nothing in it runs.
Width, class count and stem are read from the weights' shapes.
"""

import argparse
import sys
from typing import Any

import jax
import numpy as np

from stochjax import models
from stochjax.torch_io import reader
from stochjax.torch_io import state_dict as torch_convert


def build(arch: str, state: dict[str, np.ndarray], checkpoint: Any, source):
  """The stochjax model whose shapes the state_dict implies."""
  for key in ("conv1.weight", "fc.weight"):
    if key not in state:
      raise ValueError(f"The state_dict has no {key}; is it a ResNet?")
  stem_kernel = state["conv1.weight"].shape[-1]
  stems = {7: "imagenet", 3: "cifar"}
  if stem_kernel not in stems:
    raise ValueError(f"conv1 has a {stem_kernel}x{stem_kernel} kernel.")
  stem = stems[stem_kernel]
  mean, std = torch_convert.normalization(checkpoint, source, stem)
  return models.get_model(
    arch,
    num_classes=int(state["fc.weight"].shape[0]),
    num_filters=int(state["conv1.weight"].shape[0]),
    stem=stem,
    mean=mean,
    std=std,
  )


def architecture(name: str) -> str:
  """The `models.ARCHITECTURES` key for `name`, whatever its case or
  separators (``resnet50``, ``ResNet-50``).

  Raises:
    argparse.ArgumentTypeError: an unknown architecture.
  """
  by_key = {k.lower(): k for k in models.ARCHITECTURES}
  key = name.lower().replace("-", "").replace("_", "")
  if key not in by_key:
    raise argparse.ArgumentTypeError(
      f"unknown architecture {name!r}; valid: {', '.join(sorted(by_key))}"
    )
  return by_key[key]


def convert_file(path: str, arch: str, source: str):
  """``(model, variables)`` from the checkpoint at `path`."""
  checkpoint = reader.read(path)
  state = torch_convert.state_dict_of(checkpoint, source)
  model = build(arch, state, checkpoint, source)
  like = jax.eval_shape(
    model.init,
    jax.random.key(0),
    jax.ShapeDtypeStruct((1, 32, 32, 3), np.float32),
  )
  return model, torch_convert.to_flax(state, model, like)


def main(argv=None, prog: str = "python -m stochjax.convert") -> int:
  parser = argparse.ArgumentParser(
    prog=prog, description=__doc__.split("\n")[0]
  )
  parser.add_argument(
    "checkpoint", help="a torch.save file (.pth, .tar, .ckpt)"
  )
  parser.add_argument("out_dir", help="folder to write model.json + variables")
  parser.add_argument(
    "--arch",
    required=True,
    type=architecture,
    help="ResNet18/34/50 (torchvision's resnet50 spelling too), ResNet20, "
    "ResNet110, ResNet8; any case",
  )
  parser.add_argument(
    "--source", default="torchvision", choices=torch_convert.SOURCES
  )
  args = parser.parse_args(argv)
  try:
    model, variables = convert_file(args.checkpoint, args.arch, args.source)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  models.save(args.out_dir, args.arch, model, variables)
  count = sum(x.size for x in jax.tree.leaves(variables["params"]))
  print(
    f"{args.checkpoint} -> {args.out_dir}: {args.arch}, {model.num_classes} "
    f"classes, width {model.num_filters}, {count:,} parameters."
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
