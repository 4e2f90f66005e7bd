"""Torch-free checkpoint reading and conversion against torch's own logits.

The fixtures in tests/fixtures/torch were written by
tools/make_torch_fixtures.py with torch 2.13.0 (which also checked the reader
against ``torch.load`` bit for bit); torch is not needed here.
"""

import os
import pickle
import struct
import zipfile

import numpy as np
from absl.testing import absltest, parameterized

from stochjax import models
from stochjax.torch_io import cli, reader, state_dict
from tests import test_utils

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "torch")
CASES = (
  ("torchvision_resnet50_w4", ".pth", "ResNet50", "torchvision"),
  ("cohen_resnet50_w4_legacy", ".pth.tar", "ResNet50", "cohen"),
  ("cohen_cifar_resnet20_w4_legacy", ".pth.tar", "ResNet20", "cohen"),
  ("imagenette_resnet34_w4", ".ckpt", "ResNet34", "imagenette"),
)


def _expected():
  return np.load(os.path.join(FIXTURES, "expected.npz"))


class _Payload:
  """Pickles to ``os.system(command)``: what a malicious checkpoint does."""

  def __init__(self, command):
    self.command = command

  def __reduce__(self):
    return (os.system, (self.command,))


class ConvertTest(parameterized.TestCase):
  @parameterized.named_parameters(*[(c[0], *c) for c in CASES])
  # The Cohen layout stays default on its CIFAR ResNet-20.
  @test_utils.slow_cases("cohen_resnet50_w4_legacy")
  def test_logits_match_torch(self, name, suffix, arch, source):
    model, variables = cli.convert_file(
      os.path.join(FIXTURES, name + suffix), arch, source
    )
    expected = _expected()
    logits = model.apply(variables, expected[f"{name}/inputs"])
    np.testing.assert_allclose(logits, expected[f"{name}/logits"], atol=1e-5)

  def test_formats_are_what_the_sources_write(self):
    self.assertTrue(
      zipfile.is_zipfile(os.path.join(FIXTURES, "torchvision_resnet50_w4.pth"))
    )
    legacy = os.path.join(FIXTURES, "cohen_resnet50_w4_legacy.pth.tar")
    self.assertFalse(zipfile.is_zipfile(legacy))
    checkpoint = reader.read(legacy)
    self.assertEqual(checkpoint["epoch"], 90)
    momentum = checkpoint["optimizer"]["state"][0]["momentum_buffer"]
    self.assertEqual(momentum.shape, (4, 3, 7, 7))

  def test_imagenette_normalization_comes_from_the_checkpoint(self):
    model, _ = cli.convert_file(
      os.path.join(FIXTURES, "imagenette_resnet34_w4.ckpt"),
      "ResNet34",
      "imagenette",
    )
    np.testing.assert_allclose(model.mean, (0.45, 0.44, 0.40), atol=1e-7)
    self.assertEqual(model.num_classes, 10)

  def test_cli_writes_a_loadable_model(self):
    out = self.create_tempdir().full_path
    name, suffix, arch, source = CASES[2]
    code = cli.main(
      [os.path.join(FIXTURES, name + suffix), out, "--arch", arch,
       "--source", source]
    )  # fmt: skip
    self.assertEqual(code, 0)
    model, variables = models.load(out)
    self.assertEqual(model.stem, "cifar")
    expected = _expected()
    logits = model.apply(variables, expected[f"{name}/inputs"])
    np.testing.assert_allclose(logits, expected[f"{name}/logits"], atol=1e-5)

  def test_wrong_architecture_names_the_keys(self):
    path = os.path.join(FIXTURES, "torchvision_resnet50_w4.pth")
    with self.assertRaisesRegex(
      ValueError, r"\d+ unexpected: layer1\.0\.bn3\.bias.*wrong shape"
    ):
      cli.convert_file(path, "ResNet18", "torchvision")
    with self.assertRaisesRegex(
      ValueError, r"450 missing: layer1\.10\.bn1\.bias"
    ):
      cli.convert_file(
        os.path.join(FIXTURES, "cohen_cifar_resnet20_w4_legacy.pth.tar"),
        "ResNet110",
        "cohen",
      )

  def test_wrong_shape_names_the_key(self):
    state = state_dict.state_dict_of(
      reader.read(os.path.join(FIXTURES, "torchvision_resnet50_w4.pth")),
      "torchvision",
    )
    state["fc.bias"] = np.zeros(3, np.float32)
    model = cli.build("ResNet50", state, None, "torchvision")
    with self.assertRaisesRegex(
      ValueError, r"1 with the wrong shape: fc\.bias"
    ):
      state_dict.to_flax(state, model, _init_shapes(model))

  def test_wrong_prefix_for_source(self):
    path = os.path.join(FIXTURES, "torchvision_resnet50_w4.pth")
    with self.assertRaisesRegex(ValueError, "1.module."):
      cli.convert_file(path, "ResNet50", "cohen")
    self.assertEqual(cli.main([path, "/tmp/x", "--arch", "ResNet50",
                                   "--source", "imagenette"]), 2)  # fmt: skip


def _init_shapes(model):
  import jax  # noqa: PLC0415

  return jax.eval_shape(
    model.init,
    jax.random.key(0),
    jax.ShapeDtypeStruct((1, 32, 32, 3), np.float32),
  )


class SafetyTest(absltest.TestCase):
  def _marker(self):
    return os.path.join(self.create_tempdir().full_path, "pwned")

  def test_zip_checkpoint_with_code_is_refused_and_nothing_runs(self):
    marker = self._marker()
    path = os.path.join(self.create_tempdir().full_path, "evil.pth")
    with zipfile.ZipFile(path, "w") as archive:
      archive.writestr(
        "evil/data.pkl",
        pickle.dumps({"fc.weight": _Payload(f"touch {marker}")}, protocol=2),
      )
    with self.assertRaisesRegex(reader.UnsafeCheckpointError, "posix.system"):
      reader.read(path)
    self.assertFalse(os.path.exists(marker))

  def test_legacy_checkpoint_with_code_is_refused_and_nothing_runs(self):
    marker = self._marker()
    path = os.path.join(self.create_tempdir().full_path, "evil.pth.tar")
    with open(path, "wb") as f:
      for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, f, protocol=2)
      pickle.dump(_Payload(f"touch {marker}"), f, protocol=2)
    with self.assertRaisesRegex(reader.UnsafeCheckpointError, "system"):
      reader.read(path)
    self.assertFalse(os.path.exists(marker))

  def test_tensor_overrunning_its_storage_is_refused(self):
    path = os.path.join(self.create_tempdir().full_path, "overrun.pth")
    # A 2-element float storage claimed by a 1000-element tensor.
    body = (
      b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n"
      b"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
      b"X\x03\x00\x00\x00cpuK\x02tQK\x00M\xe8\x03\x85K\x01\x85\x89NtR."
    )
    with zipfile.ZipFile(path, "w") as archive:
      archive.writestr("x/data.pkl", body)
      archive.writestr("x/data/0", struct.pack("<2f", 1.0, 2.0))
    with self.assertRaisesRegex(ValueError, "overruns its storage"):
      reader.read(path)

  def test_truncated_files(self):
    tmp = self.create_tempdir().full_path
    for name in ("cohen_cifar_resnet20_w4_legacy.pth.tar",
                 "torchvision_resnet50_w4.pth"):  # fmt: skip
      with open(os.path.join(FIXTURES, name), "rb") as f:
        raw = f.read()
      path = os.path.join(tmp, name)
      with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])
      with self.subTest(name), self.assertRaisesRegex(ValueError, name):
        reader.read(path)

  def test_not_a_checkpoint(self):
    path = os.path.join(self.create_tempdir().full_path, "notes.txt")
    with open(path, "w") as f:
      f.write("hello")
    with self.assertRaisesRegex(ValueError, "notes.txt"):
      reader.read(path)


if __name__ == "__main__":
  absltest.main()
