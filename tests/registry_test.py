"""Spec parsing and the name registry."""

from absl.testing import absltest

from stochjax import defenses, registry


class ParseTest(absltest.TestCase):
  def test_pipeline_of_calls(self):
    calls = registry.parse("a(x=1, s='q')|b|c(t=(1, 2), f=None)")
    self.assertEqual(
      calls,
      [
        registry.Call("a", {"x": 1, "s": "q"}),
        registry.Call("b", {}),
        registry.Call("c", {"t": (1, 2), "f": None}),
      ],
    )

  def test_rejects_non_literals_and_positionals(self):
    for spec in ("a(x=__import__('os'))", "a(1)", "a(**k)", "a.b()", "a(", ""):
      with self.subTest(spec), self.assertRaises(ValueError):
        registry.parse(spec)


class RegistryTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.reg = registry.Registry("toy")

    @self.reg.register("scale", gradient="exact")
    def scale(x, *, by=2):
      return x * by

  def test_lookup_binds_keywords(self):
    self.assertEqual(self.reg.lookup("scale(by=3)")(2), 6)
    self.assertEqual(self.reg.lookup("scale")(2), 4)
    self.assertEqual(self.reg.entry("scale").info, {"gradient": "exact"})

  def test_unknown_name_lists_choices(self):
    with self.assertRaisesRegex(ValueError, "valid names: scale"):
      self.reg.lookup("shift()")

  def test_unknown_argument_lists_choices(self):
    with self.assertRaisesRegex(ValueError, r"unknown argument.*valid: by"):
      self.reg.lookup("scale(factor=2)")

  def test_duplicate_name_is_an_error(self):
    with self.assertRaisesRegex(ValueError, "already registered"):
      self.reg.register("scale")(lambda x: x)


class DefenseLookupTest(absltest.TestCase):
  def test_pipeline_is_a_defense(self):
    defense = defenses.lookup("noise_injection()|rotation(max_degrees=90)")
    self.assertTrue(callable(defense))

  def test_unknown_defense(self):
    with self.assertRaisesRegex(ValueError, "gaussian_noise"):
      defenses.lookup("gaussian_blurr(sigma=1)")

  def test_none_is_identity(self):
    self.assertIs(defenses.lookup(None), defenses.identity)
    for spec in ("", " ", "identity", "identity()"):
      self.assertIs(defenses.lookup(spec), defenses.identity, spec)


if __name__ == "__main__":
  absltest.main()
