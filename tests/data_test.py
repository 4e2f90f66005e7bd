"""Datasets: the embedded digits and CIFAR-10 binary files written here."""

import io
import os
import tarfile

import jax
import numpy as np
import skimage.data
import tensorflow_datasets as tfds
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
    # With their indices (training keys each example by its index).
    indexed = list(data.batches(jax.random.key(0), test, 100, with_index=True))
    index = np.concatenate([i for *_, i in indexed])
    self.assertLen(np.unique(index), 300)
    np.testing.assert_array_equal(test.labels[index], np.concatenate(a))
    np.testing.assert_array_equal(
      indexed[0][0], test.read(indexed[0][2].astype(np.int64))
    )


class PhotosTest(absltest.TestCase):
  def test_sizes_range_levels_and_balanced_prefix(self):
    train, test = data.load("photos", "train"), data.load("photos", "test")
    self.assertEqual(train.images.shape, (2000, 32, 32, 3))
    self.assertEqual(test.images.shape[1:], (32, 32, 3))
    self.assertEqual(test.images.dtype, np.float32)
    # 256 levels per channel, colour (channels differ).
    levels = test.images * 255
    np.testing.assert_array_equal(levels, np.round(levels))
    self.assertGreater(np.abs(test.images[..., 0] - test.images[..., 2]).mean(),
                       0.02)  # fmt: skip
    self.assertEqual(train.num_classes, 10)
    np.testing.assert_array_equal(
      np.bincount(test.labels[:360], minlength=10), np.full(10, 36)
    )
    np.testing.assert_array_equal(
      np.bincount(train.labels), np.full(10, data.photos.TRAIN_PER_CLASS)
    )

  def test_photographs_are_the_bundled_ones_downscaled(self):
    raw = skimage.data.astronaut()
    small = data.photos.photograph("astronaut")
    self.assertEqual(small.shape, (384, 384, 3))
    reference = np.asarray(Image.fromarray(raw).resize((384, 384),
                                                       Image.LANCZOS))  # fmt: skip
    np.testing.assert_array_equal(small, reference)
    china = datasets.load_sample_image("china.jpg")
    self.assertEqual(data.photos.photograph("china").shape[:2],
                     (384, round(china.shape[1] * 384 / china.shape[0])))  # fmt: skip

  def test_no_test_pixel_in_or_beside_a_training_patch(self):
    photos = data.photos
    for seed in range(3):
      rng = np.random.default_rng(seed)
      for name in photos.PHOTOS:
        image = photos.photograph(name)
        width = image.shape[1]
        test, train = photos.strips(width, seed % photos.STRIPS)
        xs = [x for _, x in photos.tiles(image, test)]
        self.assertGreaterEqual(min(xs), test[0])
        self.assertLessEqual(max(xs) + 32, test[1])
        corners = photos.crops(image, train, 500, rng)
        for y, x in corners:
          self.assertTrue(any(a <= x and x + 32 <= b for a, b in train))
          self.assertLessEqual(y + 32, image.shape[0])
          # Two gutters (the resize filter's reach) from every test column.
          gap = max(test[0] - (x + 32), x - test[1])
          self.assertGreaterEqual(gap, 2 * photos.GUTTER)
    # End to end: each test patch is its tile of the test strip.
    test_set = data.load("photos", "test", seed=1)
    image = photos.photograph(photos.PHOTOS[3])
    corners = photos.tiles(image, photos.strips(image.shape[1], 1)[0])
    mine = test_set.images[test_set.labels == 3]
    self.assertLen(mine, len(corners))
    for patch, (y, x) in zip(mine, corners, strict=True):
      np.testing.assert_array_equal(patch * 255, image[y : y + 32, x : x + 32])

  def test_seeds_redraw_the_split_and_repeat(self):
    first = [data.load("photos", "test", seed=s).images for s in range(3)]
    for a, b in ((0, 1), (0, 2), (1, 2)):
      self.assertFalse(np.array_equal(first[a][:10], first[b][:10]))
    np.testing.assert_array_equal(
      data.load("photos", "train", seed=1).images,
      data.load("photos", "train", seed=1).images,
    )
    self.assertTrue(data.splits.resplittable("photos"))


class Cifar10Test(absltest.TestCase):
  def _write_folder(self, root):
    folder = os.path.join(root, "cifar-10-batches-bin")
    os.makedirs(folder)
    written = {}
    for i, name in enumerate(
      data.cifar10._CIFAR_FILES["train"] + ["test_batch.bin"]
    ):
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


def _photo(seed: int, size) -> Image.Image:
  """A real photo (skimage's astronaut) cropped at a seeded offset."""
  rng = np.random.default_rng(seed)
  w, h = size
  top, left = rng.integers(0, 512 - h + 1), rng.integers(0, 512 - w + 1)
  return Image.fromarray(
    skimage.data.astronaut()[top : top + h, left : left + w]
  )


def _write_tree(root, classes, per_class, size, seed=0):
  """``root/<class>/<i>.JPEG`` files; returns the paths in sorted order."""
  paths = []
  for c, name in enumerate(sorted(classes)):
    os.makedirs(os.path.join(root, name))
    for i in range(per_class):
      path = os.path.join(root, name, f"img_{i:03d}.JPEG")
      _photo(seed + 100 * c + i, size).save(path, quality=90)
      paths.append(path)
  return paths


def _torchvision_eval(path):
  """Resize(256) + CenterCrop(224) + ToTensor as torchvision does it on PIL."""
  image = Image.open(path).convert("RGB")
  w, h = image.size
  if w <= h:
    size = (256, int(256 * h / w))
  else:
    size = (int(256 * w / h), 256)
  image = image.resize(size, Image.BILINEAR)
  w, h = image.size
  top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
  crop = image.crop((left, top, left + 224, top + 224))
  return np.asarray(crop, np.float32) / 255.0


IMAGENETTE_WNIDS = [
  "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
  "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
]  # fmt: skip


class ImagenetteTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.root = self.create_tempdir().full_path
    base = os.path.join(self.root, "imagenette2-320")
    self.val = _write_tree(
      os.path.join(base, "val"), IMAGENETTE_WNIDS, 2, (427, 320)
    )
    _write_tree(os.path.join(base, "train"), IMAGENETTE_WNIDS, 1, (320, 350))

  def test_test_split_is_every_fifth_with_torchvision_preprocessing(self):
    test = data.load("imagenette", "test", data_dir=self.root)
    self.assertEqual(test.paths, self.val[::5])
    np.testing.assert_array_equal(test.labels, [0, 2, 5, 7])
    images = test.read(np.arange(4))
    self.assertEqual(images.shape, (4, 224, 224, 3))
    for i, path in enumerate(self.val[::5]):
      np.testing.assert_array_equal(images[i], _torchvision_eval(path))

  def test_train_crops_are_random_flipped_and_reproducible(self):
    train = data.load("imagenette", "train", data_dir=self.root)
    self.assertLen(train, 10)
    key = jax.random.key(0)
    a = train.read(np.arange(10), key)
    np.testing.assert_array_equal(a, train.read(np.arange(10), key))
    b = train.read(np.arange(10), jax.random.key(1))
    self.assertFalse(np.array_equal(a, b))
    # Every output is a 224 crop of the stored image, possibly mirrored.
    source = np.asarray(Image.open(train.paths[3]).convert("RGB")) / 255.0
    crop = a[3]
    windows = np.lib.stride_tricks.sliding_window_view(source, (224, 224, 3))[
      ..., 0, :, :, :
    ]
    found = any(
      np.allclose(windows[i, j], c, atol=1e-6)
      for c in (crop, crop[:, ::-1])
      for i in range(windows.shape[0])
      for j in range(windows.shape[1])
      if np.allclose(windows[i, j, 0, 0], c[0, 0], atol=1e-6)
    )
    self.assertTrue(found)

  def test_missing_folder_says_where_and_what(self):
    with self.assertRaisesRegex(ValueError, "imagenette2-320/.*train,val"):
      data.load("imagenette", "test", data_dir=self.create_tempdir().full_path)


class ImagenetTest(absltest.TestCase):
  def _flat(self, root, numbers):
    for n in numbers:
      _photo(n, (300, 260)).save(
        os.path.join(root, f"ILSVRC2012_val_{n:08d}.JPEG"), quality=90
      )

  def test_flat_layout_uses_tfds_labels_in_class_order(self):
    root = self.create_tempdir().full_path
    self._flat(root, range(1, 121))
    wnids = data.folders.imagenet_wnids()
    truth = data.folders.imagenet_validation_wnids()
    val = data.folders.imagenet(root, every=1)
    expected = sorted(
      range(1, 121), key=lambda n: (wnids.index(truth[n - 1]), n)
    )
    self.assertEqual(
      [os.path.basename(p) for p in val.paths],
      [f"ILSVRC2012_val_{n:08d}.JPEG" for n in expected],
    )
    self.assertEqual(
      val.labels[0], min(wnids.index(truth[n - 1]) for n in expected)
    )
    # Image 2 is class 970 (alp) in ImageNet's validation labels.
    self.assertEqual(val.labels[expected.index(2)], 970)
    every = data.load("imagenet", "test", data_dir=root)
    self.assertEqual(every.paths, val.paths[::50])

  def test_class_folder_layout_matches_flat(self):
    root = self.create_tempdir().full_path
    wnids = data.folders.imagenet_wnids()
    paths = _write_tree(
      os.path.join(root, "val"), [wnids[3], wnids[900]], 3, (280, 300)
    )
    val = data.folders.imagenet(root, every=2)
    self.assertEqual(val.paths, paths[::2])
    np.testing.assert_array_equal(val.labels, [3, 3, 900])
    np.testing.assert_array_equal(val.read([0])[0], _torchvision_eval(paths[0]))

  def test_corrupt_image_is_named(self):
    root = self.create_tempdir().full_path
    self._flat(root, [1, 2])
    path = os.path.join(root, "ILSVRC2012_val_00000002.JPEG")
    with open(path, "r+b") as f:
      f.truncate(300)
    val = data.folders.imagenet(root, every=1)
    with self.assertRaisesRegex(ValueError, "ILSVRC2012_val_00000002"):
      val.load()

  def test_missing_data_says_where_and_what(self):
    with self.assertRaisesRegex(ValueError, "ILSVRC2012_val_%08d.*wnid"):
      data.load("imagenet", "test", data_dir=self.create_tempdir().full_path)
    with self.assertRaisesRegex(ValueError, "validation"):
      data.load("imagenet", "train", data_dir="/nonexistent")


class TfdsTest(absltest.TestCase):
  def test_mock_cifar10_through_data_source(self):
    with tfds.testing.mock_data(num_examples=6):
      source = data.load("tfds:cifar10", "test")
      self.assertEqual(source.num_classes, 10)
      self.assertEqual(source.image_shape, (32, 32, 3))
      images = source.read(np.arange(6))
      raw = tfds.data_source("cifar10", split="test")
      np.testing.assert_allclose(
        images[2], np.asarray(raw[2]["image"]) / 255.0, atol=1e-7
      )
      np.testing.assert_array_equal(
        source.labels, [int(raw[i]["label"]) for i in range(6)]
      )

  def test_variable_size_images_get_the_eval_transform(self):
    with tfds.testing.mock_data(num_examples=3):
      source = data.load("tfds:imagenette/320px-v2", "test")
      images = source.load().images
    self.assertEqual(images.shape, (3, 224, 224, 3))
    self.assertTrue(0 <= images.min() and images.max() <= 1)

  def test_unknown_tfds_name(self):
    with self.assertRaisesRegex(ValueError, "tfds"):
      data.load("tfds:no_such_dataset_xyz", "test")


if __name__ == "__main__":
  absltest.main()
