"""BaRT's members and ensemble against scipy, scikit-image and NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
import scipy.ndimage
import skimage.data
import skimage.transform
from absl.testing import absltest, parameterized

from stochjax import defenses, prng, registry
from stochjax.defenses import ensemble, filters
from tests import test_utils


def _photo(size=48):
  """A crop of skimage's astronaut, float32 in [0, 1]."""
  return (
    skimage.data.astronaut()[100 : 100 + size, 180 : 180 + size] / 255.0
  ).astype(np.float32)


def _kornia_gaussian(size, sigma):
  x = np.arange(size) - size // 2
  weights = np.exp(-(x**2) / (2 * sigma**2))
  return weights / weights.sum()


class FilterTest(parameterized.TestCase):
  @parameterized.parameters(((3, 3), (0.5, 0.5)), ((13, 5), (3.0, 0.8)),
                            ((7, 11), (1.2, 2.9)))  # fmt: skip
  def test_gaussian_blur_matches_scipy(self, size, sigma):
    image = _photo()
    ours = defenses.blur(jnp.asarray(image), size=size, sigma=sigma)
    reference = scipy.ndimage.correlate1d(
      image, _kornia_gaussian(size[0], sigma[0]), axis=0, mode="mirror"
    )
    reference = scipy.ndimage.correlate1d(
      reference, _kornia_gaussian(size[1], sigma[1]), axis=1, mode="mirror"
    )
    np.testing.assert_allclose(ours, reference, atol=1e-6)

  @parameterized.parameters((3, 3), (5, 13), (13, 7))
  @test_utils.slow_cases(0, 1)  # The same unrolled taps at other sizes.
  def test_median_matches_scipy_zero_padding(self, kh, kw):
    image = _photo(32)
    ours = defenses.filter_median(jnp.asarray(image), size=(kh, kw))
    reference = scipy.ndimage.median_filter(
      image, size=(kh, kw, 1), mode="constant", cval=0.0
    )
    np.testing.assert_array_equal(ours, reference)

  def test_median_batched_with_a_kernel_per_image_matches_scipy(self):
    # Under vmap each image keeps its own kernel (the row loop runs to the
    # batch's largest and masks the rest).
    images = np.stack([_photo(32), _photo(32)[::-1], _photo(32)[:, ::-1]])
    sizes = np.array([(3, 13), (13, 3), (7, 9)], np.int32)
    ours = jax.vmap(lambda x, s: defenses.filter_median(x, size=(s[0], s[1])))(
      jnp.asarray(images), jnp.asarray(sizes)
    )
    for image, (kh, kw), out in zip(images, sizes, ours, strict=True):
      reference = scipy.ndimage.median_filter(
        image, size=(kh, kw, 1), mode="constant", cval=0.0
      )
      np.testing.assert_array_equal(out, reference)

  def test_median_of_values_outside_0_1(self):
    # Exact for any float32 (e.g. after unclipped noise): negative values too.
    image = (
      np.random.default_rng(0).normal(0, 2, (20, 20, 2)).astype(np.float32)
    )
    ours = defenses.filter_median(jnp.asarray(image), size=(5, 3))
    reference = scipy.ndimage.median_filter(
      image, size=(5, 3, 1), mode="constant", cval=0.0
    )
    np.testing.assert_array_equal(ours, reference)

  def test_random_kernel_sizes_are_odd_3_to_13_uniform(self):
    keys = jax.random.split(jax.random.key(0), 6000)
    sizes = np.asarray(jax.vmap(filters._odd_size)(keys))
    values, counts = np.unique(sizes, return_counts=True)
    np.testing.assert_array_equal(values, [3, 5, 7, 9, 11, 13])
    np.testing.assert_allclose(counts / 6000, 1 / 6, atol=0.02)

  def test_tiny_image_is_refused(self):
    with self.assertRaisesRegex(ValueError, "H, W > 6"):
      defenses.blur(jnp.zeros((5, 5, 3)), size=(3, 3), sigma=(1, 1))


class SwirlTest(parameterized.TestCase):
  @parameterized.parameters(
    ((20.0, 30.0), 1.5, 40.0),
    ((5.0, 50.0), 0.3, 120.0),
    ((60.0, 2.0), 1.99, 10.0),
  )
  def test_matches_skimage(self, center, strength, radius):
    image = _photo(64)
    ours = defenses.swirl_image(
      jnp.asarray(image), center=center, strength=strength, radius=radius
    )
    reference = skimage.transform.swirl(
      image, center=center, strength=strength, radius=radius, order=1,
      mode="reflect",
    )  # fmt: skip
    self.assertLessEqual(
      float(np.abs(np.asarray(ours) - reference).max()), 1e-4
    )


class CompressionTest(absltest.TestCase):
  def test_quantize_matches_numpy(self):
    image = _photo()
    scales = np.array([8.0, 57.0, 199.0], np.float32)
    ours = defenses.quantize(jnp.asarray(image), jnp.asarray(scales))
    np.testing.assert_allclose(
      ours, np.round(image * scales) / scales, atol=1e-7
    )

  def test_fft_perturb_matches_numpy(self):
    image = _photo()
    rng = np.random.default_rng(0)
    fractions = np.array([0.1, 0.45, 0.7], np.float32)
    factor = rng.uniform(0.98, 1.02, image.shape[:2]).astype(np.float32)
    ours = defenses.fft_perturb(
      jnp.asarray(image), jnp.asarray(fractions), jnp.asarray(factor)
    )
    h, w, _ = image.shape
    reference = np.empty_like(image)
    for c, f in enumerate(fractions):
      spectrum = np.fft.fft2(image[..., c])
      spectrum[int(h * f) : int(h * (1 - f)), :] = 0
      spectrum[:, int(w * f) : int(w * (1 - f))] = 0
      reference[..., c] = np.clip(
        np.real(np.fft.ifft2(spectrum * factor)), 0, 1
      )
    np.testing.assert_allclose(ours, reference, atol=2e-5)


class DeterministicCompressionTest(absltest.TestCase):
  def test_dct_matches_scipy_blocks(self):
    image = _photo(20)  # Padded to 24: 2 rows/cols before, 2 after.
    ours = np.asarray(defenses.dct_quantize(jnp.asarray(image)))
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
    q = np.full((8, 8), 30.0)
    q[:4, :4] = 25.0
    reference = np.empty_like(padded)
    for i in range(0, 24, 8):
      for j in range(0, 24, 8):
        for c in range(3):
          block = scipy.fft.dctn(padded[i : i + 8, j : j + 8, c], norm="ortho")
          block = np.round(block * 255 / q) * q
          reference[i : i + 8, j : j + 8, c] = (
            scipy.fft.idctn(block, norm="ortho") / 255
          )
    np.testing.assert_allclose(ours, reference[2:22, 2:22], atol=2e-5)

  def test_bit_depth(self):
    image = _photo()
    out = defenses.lookup("bit_depth(bits=3)")(
      jax.random.key(0), jnp.asarray(image)
    )
    np.testing.assert_allclose(out, np.round(image * 7) / 7, atol=1e-7)
    with self.assertRaisesRegex(ValueError, "bits"):
      defenses.lookup("bit_depth(bits=9)")(
        jax.random.key(0), jnp.asarray(image)
      )


class EnsembleTest(absltest.TestCase):
  def test_applies_a_random_permutation_per_image(self):
    members = "rotation(max_degrees=30)|quantization(scale_low=4, scale_high=5)"
    bart = defenses.lookup(f'bart(members="{members}")')
    rotate, quantize = ensemble.members_of(members)
    image = jnp.asarray(_photo(24))
    orders = set()
    for seed in range(12):
      key = jax.random.key(seed)
      order_key, member_key = jax.random.split(key)
      order = np.asarray(jax.random.permutation(order_key, 2))
      keys = jax.random.split(member_key, 2)
      expected = image
      for position, member in enumerate(order):
        expected = (rotate, quantize)[member](keys[position], expected)
      np.testing.assert_allclose(bart(key, image), expected, atol=1e-6)
      orders.add(tuple(order))
    self.assertEqual(orders, {(0, 1), (1, 0)})

  @pytest.mark.slow
  def test_shared_order_is_one_per_call(self):
    members = "dct()|bit_depth(bits=2)"  # Deterministic, non-commuting.
    dct, bits = ensemble.members_of(members)
    key = jax.random.key(0)
    images = jnp.asarray(
      np.stack([_photo(16)[::s, ::t] for s in (1, -1) for t in (1, -1)] * 2)
    )
    orders = {
      "dct first": jax.vmap(lambda x: bits(key, dct(key, x)))(images),
      "bits first": jax.vmap(lambda x: dct(key, bits(key, x)))(images),
    }

    def drawn_orders(order, call_key):
      spec = f'bart(members="{members}", order="{order}")'
      out = jax.jit(defenses.batched(defenses.lookup(spec)))(call_key, images)
      return [
        [n for n, o in orders.items() if np.allclose(out[i], o[i], atol=1e-6)]
        for i in range(len(images))
      ]

    calls = [drawn_orders("shared", jax.random.key(s)) for s in range(6)]
    for drawn in calls:
      self.assertLen({tuple(d) for d in drawn}, 1)  # One order per call,
    self.assertLen({tuple(c[0]) for c in calls}, 2)  # new at every call.
    per_image = drawn_orders("per_image", jax.random.key(0))
    self.assertLen({tuple(d) for d in per_image}, 2)
    # Outside a batch the shared order is the image's own.
    single = defenses.lookup(f'bart(members="{members}", order="shared")')
    own = defenses.lookup(f'bart(members="{members}")')
    for seed in range(4):
      np.testing.assert_array_equal(
        single(jax.random.key(seed), images[0]),
        own(jax.random.key(seed), images[0]),
      )
    with self.assertRaisesRegex(ValueError, "Unknown order 'batch'"):
      defenses.lookup('bart(order="batch")')(key, images[0])

  def test_one_of_picks_each_member_uniformly(self):
    members = "bit_depth(bits=1)|bit_depth(bits=2)|dct()"  # Deterministic.
    fns = ensemble.members_of(members)
    image = jnp.asarray(_photo(16))
    outputs = [np.asarray(f(jax.random.key(0), image)) for f in fns]
    pick = jax.jit(defenses.batched(defenses.lookup(
      f'one_of(members="{members}")'
    )))(jax.random.key(1), jnp.stack([image] * 300))  # fmt: skip
    chosen = [
      [i for i, o in enumerate(outputs) if np.allclose(p, o, atol=1e-6)]
      for p in np.asarray(pick)
    ]
    self.assertTrue(all(len(c) == 1 for c in chosen))
    counts = np.bincount([c[0] for c in chosen], minlength=3)
    self.assertGreater(counts.min(), 70)  # 100 expected each.

  def test_raff_groups_build(self):
    calls = registry.parse(defenses.RAFF_GROUPS)
    self.assertLen(calls, 10)
    members = ensemble.members_of(defenses.RAFF_GROUPS)
    groups = [c.kwargs["members"] for c in calls if c.name == "one_of"]
    # 6 single transforms + 4 + 3 + 4 + 7 group members: BaRT's 24 here.
    self.assertEqual(6 + sum(len(registry.parse(g)) for g in groups), 24)
    self.assertLen(members, 10)

  @pytest.mark.slow
  def test_sequential_and_select_switches_agree_batched(self):
    """Values and gradients, under one and two vmaps (batch and EOT)."""
    members = "rotation(max_degrees=30)|quantization()|gaussian_blur()"
    images = jnp.asarray(np.stack([_photo(24), _photo(24)[::-1]]))
    keys = prng.per_example(jax.random.key(0), 2)
    draws = jax.vmap(lambda k: jax.random.split(k, 3))(keys)

    def run(switch):
      bart = defenses.lookup(f'bart(members="{members}", switch="{switch}")')
      eot = jax.vmap(jax.vmap(bart, in_axes=(0, None)))

      def loss(x):
        return jnp.sum(jnp.sin(3.0 * eot(draws, x)))

      return jax.jit(jax.value_and_grad(loss))(images), eot(draws, images)

    (value_a, grad_a), out_a = run("select")
    (value_b, grad_b), out_b = run("sequential")
    # Differently fused rotations round differently (seen: 1.8e-6).
    np.testing.assert_allclose(out_b, out_a, atol=1e-5)
    np.testing.assert_allclose(value_b, value_a, rtol=1e-5)  # a float32 sum
    np.testing.assert_allclose(grad_b, grad_a, atol=1e-5)
    self.assertGreater(float(jnp.abs(grad_a).max()), 0.0)
    with self.assertRaisesRegex(ValueError, "Unknown switch mode 'fast'"):
      defenses.lookup('bart(switch="fast")')(jax.random.key(0), images[0])

  @pytest.mark.slow
  def test_a_k_subset_runs(self):
    out = defenses.lookup("bart(k=2)")(
      jax.random.key(0), jnp.asarray(_photo(32))
    )
    self.assertEqual(out.shape, (32, 32, 3))

  def test_bad_specs(self):
    for spec, message in (
      ("bart(k=7)", "k must be in 1..6"),
      ("bart(k=0)", "k must be in 1..6"),
      ('bart(members="median()|nope()")', "nope"),
      ('bart(members="bart()")', "cannot themselves"),
    ):
      with self.subTest(spec), self.assertRaisesRegex(ValueError, message):
        defenses.lookup(spec)(jax.random.key(0), jnp.asarray(_photo(32)))


class BadParametersTest(parameterized.TestCase):
  @parameterized.parameters(
    ("quantization(scale_low=50, scale_high=50)", "scale_low"),
    ("gaussian_blur(sigma_low=2.0, sigma_high=1.0)", "sigma_high"),
    ("swirl(radius_low=50, radius_high=20)", "radius"),
    ("fft_perturbation(max_fraction=1.5)", "max_fraction"),
  )
  def test_impossible_ranges(self, spec, message):
    with self.assertRaisesRegex(ValueError, message):
      defenses.lookup(spec)(jax.random.key(0), jnp.asarray(_photo(32)))


if __name__ == "__main__":
  absltest.main()
