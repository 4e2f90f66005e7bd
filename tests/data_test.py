"""Datasets: the embedded digits and CIFAR-10 binary files written here."""

import io
import os
import tarfile

import jax
import numpy as np
from absl.testing import absltest
from PIL import Image
from sklearn import datasets

from stochjax import data


def _cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
  """The official binary layout: label byte + 3072 bytes of CHW pixels."""
  chw = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
  return (
    np.concatenate([labels[:, None], chw], axis=1).astype(np.uint8).tobytes()
  )


def _fake_cifar(seed: int, n: int):
  rng = np.random.default_rng(seed)
  return (
    rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
    rng.integers(0, 10, n, dtype=np.uint8),
  )


class DigitsTest(absltest.TestCase):
  def test_split_shapes_and_range(self):
    train, test = data.load("digits", "train"), data.load("digits", "test")
    self.assertEqual(train.images.shape, (1437, 32, 32, 3))
    self.assertEqual(test.images.shape, (360, 32, 32, 3))
    self.assertEqual(train.images.dtype, np.float32)
    self.assertEqual(train.labels.dtype, np.int32)
    self.assertGreaterEqual(train.images.min(), 0.0)
    self.assertLessEqual(train.images.max(), 1.0)
    self.assertEqual(set(np.unique(test.labels)), set(range(10)))

  def test_upsampling_equals_pil_bilinear(self):
    raw = datasets.load_digits()
    order = np.random.RandomState(0).permutation(len(raw.images))
    train = data.load("digits", "train")
    for i in (0, 1, 100):
      source = (raw.images[order[i]] / 16).astype(np.float32)
      reference = Image.fromarray(source).resize((32, 32), Image.BILINEAR)
      np.testing.assert_allclose(
        train.images[i, ..., 0], np.asarray(reference), atol=1e-6
      )
      np.testing.assert_array_equal(
        train.images[i, ..., 0], train.images[i, ..., 2]
      )
      self.assertEqual(train.labels[i], raw.target[order[i]])

  def test_batches_cover_an_epoch_in_key_order(self):
    test = data.load("digits", "test")
    a = [y for _, y in data.batches(jax.random.key(0), test, 100)]
    b = [y for _, y in data.batches(jax.random.key(0), test, 100)]
    c = [y for _, y in data.batches(jax.random.key(1), test, 100)]
    self.assertLen(a, 3)
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    self.assertFalse(np.array_equal(np.concatenate(a), np.concatenate(c)))


class Cifar10Test(absltest.TestCase):
  def _write_folder(self, root):
    folder = os.path.join(root, "cifar-10-batches-bin")
    os.makedirs(folder)
    written = {}
    for i, name in enumerate(data._CIFAR_FILES["train"] + ["test_batch.bin"]):
      images, labels = _fake_cifar(i, 3)
      written[name] = (images, labels)
      with open(os.path.join(folder, name), "wb") as f:
        f.write(_cifar_bytes(images, labels))
    return folder, written

  def test_folder_layout(self):
    root = self.create_tempdir().full_path
    _, written = self._write_folder(root)
    test = data.load("cifar10", "test", data_dir=root)
    images, labels = written["test_batch.bin"]
    np.testing.assert_allclose(test.images, images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(test.labels, labels)
    self.assertLen(data.load("cifar10", "train", data_dir=root).labels, 15)

  def test_archive_layout(self):
    root = self.create_tempdir().full_path
    images, labels = _fake_cifar(7, 4)
    with tarfile.open(
      os.path.join(root, "cifar-10-binary.tar.gz"), "w:gz"
    ) as tar:
      payload = _cifar_bytes(images, labels)
      info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
      info.size = len(payload)
      tar.addfile(info, io.BytesIO(payload))
    test = data.load("cifar10", "test", data_dir=root)
    np.testing.assert_array_equal(test.labels, labels)
    np.testing.assert_allclose(test.images, images / 255.0, atol=1e-7)

  def test_truncated_file_is_named(self):
    root = self.create_tempdir().full_path
    folder, _ = self._write_folder(root)
    path = os.path.join(folder, "test_batch.bin")
    with open(path, "r+b") as f:
      f.truncate(5000)
    with self.assertRaisesRegex(ValueError, "test_batch.bin.*truncated"):
      data.load("cifar10", "test", data_dir=root)

  def test_missing_data_says_where_and_what(self):
    root = self.create_tempdir().full_path
    with self.assertRaisesRegex(ValueError, "cifar-10-batches-bin.*binary"):
      data.load("cifar10", "test", data_dir=root)

  def test_unknown_names(self):
    with self.assertRaisesRegex(ValueError, "digits"):
      data.load("mnist", "train")
    with self.assertRaisesRegex(ValueError, "split"):
      data.load("digits", "validation")


if __name__ == "__main__":
  absltest.main()
