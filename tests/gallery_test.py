"""The gallery CLI writes a grid of real draws on a bundled photo."""

import os

import numpy as np
from absl.testing import absltest
from PIL import Image

from stochjax import gallery


class GalleryTest(absltest.TestCase):
  def test_writes_png_of_distinct_draws(self):
    out = os.path.join(self.create_tempdir().full_path, "grid.png")
    code = gallery.main(
      ["--defense", "noise_injection()", "--image", "chelsea", "--num", "4",
       "--size", "32", "--out", out]
    )  # fmt: skip
    self.assertEqual(code, 0)
    with Image.open(out) as png:
      self.assertEqual(png.format, "PNG")
    image = gallery.photo("chelsea", 32)
    samples = gallery.draws("noise_injection()", image, 4)
    self.assertEqual(samples.shape, (4, 32, 32, 3))
    self.assertGreater(len({s.tobytes() for s in samples}), 1)
    self.assertFalse(np.array_equal(samples[0], image))

  def test_every_bundled_photo_loads(self):
    for name in gallery.PHOTOS:
      with self.subTest(name):
        image = gallery.photo(name, 16)
        self.assertEqual(image.shape, (16, 16, 3))
        self.assertTrue(0 <= image.min() and image.max() <= 1)

  def test_bad_input(self):
    out = os.path.join(self.create_tempdir().full_path, "x.png")
    self.assertEqual(gallery.main(["--defense", "nope()", "--out", out]), 2)
    self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
  absltest.main()
