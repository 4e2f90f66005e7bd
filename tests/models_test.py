"""ResNets: torchvision parameter counts, shapes, the loop-friendly conv."""

import re

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized
from jax import lax

from stochjax import models
from tests import test_utils


def _num_params(model, size):
  variables = jax.eval_shape(
    model.init, jax.random.key(0), jnp.zeros((1, size, size, 3))
  )
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


class ResNetTest(parameterized.TestCase):
  @parameterized.parameters(
    ("ResNet18", 11_689_512), ("ResNet34", 21_797_672), ("ResNet50", 25_557_032)
  )
  def test_torchvision_parameter_counts(self, name, expected):
    self.assertEqual(_num_params(models.get_model(name), 224), expected)

  @parameterized.product(stem=("cifar", "imagenet"), name=("ResNetTiny",))
  def test_output_shapes_and_eval_mode(self, stem, name):
    model = models.get_model(name, num_classes=7, stem=stem)
    images = test_utils.random_images(0, (2, 32, 32, 3))
    variables = model.init(jax.random.key(0), images)
    logits_fn = models.classifier(model, variables)
    logits = logits_fn(images)
    self.assertEqual(logits.shape, (2, 7))
    # Eval mode: an example's logits do not depend on the rest of the batch.
    np.testing.assert_allclose(logits_fn(images[:1]), logits[:1], atol=1e-5)

  def test_normalization_is_inside(self):
    model = models.ResNetTiny(num_classes=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    images = test_utils.random_images(1, (2, 16, 16, 3))
    variables = model.init(jax.random.key(0), images)
    plain = models.ResNetTiny(num_classes=3, mean=(0.0,) * 3, std=(1.0,) * 3)
    np.testing.assert_allclose(
      model.apply(variables, images),
      plain.apply(variables, (images - 0.5) / 0.25),
      rtol=1e-5,
      atol=1e-5,
    )

  def test_unknown_names(self):
    with self.assertRaisesRegex(ValueError, "ResNet18"):
      models.get_model("ResNet19")
    model = models.ResNetTiny(stem="mnist")
    with self.assertRaisesRegex(ValueError, "stem"):
      model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))


class ExplicitConvTest(parameterized.TestCase):
  @parameterized.parameters(
    ((3, 3), (1, 1), "SAME", 9),
    ((3, 3), (2, 2), ((1, 1), (1, 1)), 9),
    ((3, 3), (2, 2), "SAME", 8),
    ((1, 1), (2, 2), "VALID", 8),
    ((7, 7), (2, 2), ((3, 3), (3, 3)), 11),
    ((2, 3), (1, 2), "VALID", 7),
  )
  def test_gradients_equal_lax(self, kernel, strides, padding, size):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, size, size + 1, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=kernel + (4, 5)), jnp.float32)

    def loss(conv, x, w):
      y = conv(
        x, w, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
      )
      return jnp.sum(jnp.sin(y))

    ours = jax.grad(lambda x, w: loss(models.explicit_conv, x, w), (0, 1))
    theirs = jax.grad(lambda x, w: loss(lax.conv_general_dilated, x, w), (0, 1))
    test_utils.assert_trees_all_close(
      ours(x, w), theirs(x, w), rtol=1e-5, atol=1e-5
    )

  def test_explicit_path_is_taken_in_the_jaxpr(self):
    def loss(x, w):
      y = models.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
      )
      return jnp.sum(y)

    x, w = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 4))
    jaxpr = str(jax.make_jaxpr(jax.grad(loss))(x, w))
    # The explicit path swaps the kernel's in/out axes with a transpose; the
    # standard transpose rule swaps them through dimension numbers instead.
    self.assertIn("transpose[permutation=(0, 1, 3, 2)]", jaxpr)
    self.assertNotIn("rhs_spec=(2, 3, 0, 1)", jaxpr)

  def test_the_hoisting_marker_is_the_identity_bit_for_bit(self):
    from stochjax.models import conv as conv_lib  # noqa: PLC0415

    for dtype in (np.float32, np.float64):
      info = np.finfo(dtype)
      values = np.array(
        [0.0, -0.0, info.tiny, info.smallest_subnormal, -info.max, np.inf,
         np.nan, 1 / 3, np.pi], dtype)  # fmt: skip
      values = np.concatenate(
        [values, np.random.default_rng(0).normal(size=64).astype(dtype)]
      )
      with jax.enable_x64(dtype == np.float64):
        out = np.asarray(jax.jit(conv_lib._loop_invariant)(values))
      self.assertEqual(out.dtype, dtype)
      np.testing.assert_array_equal(out.view(f"u{out.itemsize}"),
                                    values.view(f"u{out.itemsize}"))  # fmt: skip

  def test_the_flipped_kernel_is_computed_once_before_a_loop(self):
    w = jnp.ones((3, 3, 8, 16))

    def run(w, x):
      def step(x, _):
        g = jax.grad(
          lambda x: jnp.sum(
            models.conv_general_dilated(
              x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            ** 2
          )
        )(x)
        return x - 0.01 * g, None

      return lax.scan(step, x, None, length=4)[0]

    hlo = jax.jit(run).lower(w, jnp.ones((2, 6, 6, 8))).compile().as_text()
    # The body of the while loop: the one computation that the while names.
    body = re.search(r"while\(.*?body=(%[\w.\-]+)", hlo).group(1)
    text = re.search(re.escape(body) + r" .*?\n}\n", hlo, re.S).group(0)
    # No kernel-shaped (or transposed-kernel-shaped) value is made inside.
    made = [line for line in text.splitlines()
            if re.search(r"= f32\[3,3,(8,16|16,8)\]\{[\d,]*\} "
                         r"(?!get-tuple-element\()", line)]  # fmt: skip
    self.assertEqual(made, [], "\n".join(made))


if __name__ == "__main__":
  absltest.main()
