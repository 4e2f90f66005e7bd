"""Training: resume after an interruption equals an uninterrupted run."""

import functools
import os

import jax
import numpy as np
from absl.testing import absltest
from PIL import Image

from stochjax import data, defenses, models, train
from tests import test_utils


class _Interrupt(Exception):
  pass


def _small_digits():
  full = data.load("digits", "train")
  return data.Dataset(full.images[:96], full.labels[:96], 10)


def _train(directory, epochs=3, on_epoch=None, learning_rate=1e-3):
  return train.train(
    key=jax.random.key(0),
    model=models.ResNetTiny(num_classes=10, stem="cifar"),
    train_set=_small_digits(),
    defense=defenses.lookup("gaussian_noise(sigma=0.1)"),
    epochs=epochs,
    batch_size=32,
    learning_rate=learning_rate,
    checkpoint_dir=directory,
    on_epoch=on_epoch,
  )


class StreamingSourceTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.enter_context(jax.numpy_dtype_promotion("standard"))

  def test_trains_on_image_files_decoded_per_batch(self):
    # JPEG files on disk, random 24-pixel crops decoded per batch.
    root = self.create_tempdir().full_path
    full = data.load("digits", "train")
    paths = []
    for i in range(40):
      path = os.path.join(root, f"{i:02d}.png")
      Image.fromarray((full.images[i] * 255).astype(np.uint8)).save(path)
      paths.append(path)
    crop = functools.partial(data.images.train_transform, crop=24)
    source = data.ImageFiles(paths, full.labels[:40], 10, crop, (24, 24, 3))
    epochs = []
    variables = train.train(
      key=jax.random.key(0),
      model=models.ResNetTiny(num_classes=10, stem="cifar"),
      train_set=source,
      defense=defenses.lookup("noise_injection()"),
      epochs=2,
      batch_size=8,
      checkpoint_dir=self.create_tempdir().full_path,
      eval_set=source,
      on_epoch=lambda epoch, metrics: epochs.append(metrics),
    )
    self.assertLen(epochs, 2)
    for metrics in epochs:
      self.assertTrue(np.isfinite(metrics["loss"]))
      self.assertTrue(0 <= metrics["eval_defended_accuracy"] <= 1)
    self.assertIn("params", variables)


class ResumeTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    # optax's Adam bias correction promotes int32 step counts to float.
    self.enter_context(jax.numpy_dtype_promotion("standard"))

  def test_interrupted_run_resumes_to_the_same_parameters(self):
    reference = _train(self.create_tempdir().full_path)

    directory = self.create_tempdir().full_path

    def stop_after_first(epoch, metrics):
      del metrics
      if epoch == 1:
        raise _Interrupt

    with self.assertRaises(_Interrupt):
      _train(directory, on_epoch=stop_after_first)
    epochs_run = []
    resumed = _train(directory, on_epoch=lambda e, m: epochs_run.append(e))
    self.assertEqual(epochs_run, [2, 3])
    test_utils.assert_trees_all_close(resumed, reference, rtol=0, atol=0)
    # Training changed the weights.
    initial = models.ResNetTiny(num_classes=10, stem="cifar").init(
      jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32)
    )
    self.assertFalse(
      np.allclose(
        jax.tree.leaves(resumed["params"])[0],
        jax.tree.leaves(initial["params"])[0],
      )
    )

  def test_nan_loss_stops_and_keeps_last_good_checkpoint(self):
    directory = self.create_tempdir().full_path
    _train(directory, epochs=1)
    with self.assertRaisesRegex(FloatingPointError, "epoch 1"):
      _train(directory, epochs=2, learning_rate=float("inf"))
    from stochjax import checkpoint

    self.assertEqual(checkpoint.manager(directory).latest_step(), 1)


if __name__ == "__main__":
  absltest.main()
