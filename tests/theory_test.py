"""Section 5's closed forms against Monte Carlo and their known properties."""

import math

import jax
import scipy.integrate
import scipy.stats
from absl.testing import absltest, parameterized

from stochjax import theory

_POINTS = ((0.5, 1.0), (0.25, 0.5), (1.0, 2.0))


class ClosedFormTest(parameterized.TestCase):
  @parameterized.product(
    point=_POINTS, stage=["undefended", "defended", "trained"]
  )
  def test_simulation_agrees(self, point, stage):
    eps, sigma = point
    sim = theory.simulate(
      jax.random.key(0), stage, eps, sigma, num_samples=400_000
    )
    self.assertLess(
      abs(sim["robust"] - theory.robust_accuracy(stage, eps, sigma)),
      4 * sim["stderr"],
    )
    self.assertAlmostEqual(
      sim["clean"], theory.clean_accuracy(stage, sigma), delta=0.004
    )

  @parameterized.product(point=_POINTS, stage=["defended", "trained"])
  def test_closed_forms_match_an_integral(self, point, stage):
    # Integrate over x the probability (over the shared theta ~ N(1,
    # sigma^2)) that the clean and the attacked x are both classified
    # correctly by sgn(x + theta - shift), class by class.
    eps, sigma = point
    shift = 0.0 if stage == "defended" else 1.0
    theta = scipy.stats.norm(1.0, sigma)
    both, clean = 0.0, 0.0
    for y in (1.0, -1.0):
      # y = +1 needs theta > shift - x; y = -1 needs theta < shift - x. The
      # attack moves x by eps toward the boundary, which implies the clean
      # case for this shared theta.
      def correct(x, y=y):
        return theta.sf(shift - x) if y > 0 else theta.cdf(shift - x)

      def density(x, y=y):
        return scipy.stats.norm.pdf(x - y)

      both += scipy.integrate.quad(
        lambda x, y=y: correct(x - y * eps) * density(x), y - 10, y + 10
      )[0]
      clean += scipy.integrate.quad(
        lambda x: correct(x) * density(x), y - 10, y + 10
      )[0]
    self.assertAlmostEqual(
      theory.robust_accuracy(stage, eps, sigma), both / clean, places=6
    )
    self.assertAlmostEqual(
      theory.clean_accuracy(stage, sigma), clean / 2, places=6
    )

  def test_properties(self):
    # Eq. 6 equals Eq. 4 without randomness.
    self.assertAlmostEqual(
      theory.robust_accuracy("trained", 0.5, 0.0),
      theory.robust_accuracy("undefended", 0.5, 0.0),
    )
    # Both randomized classifiers tend to 1 as sigma grows.
    for stage in ("defended", "trained"):
      self.assertGreater(theory.robust_accuracy(stage, 0.5, 1e4), 0.999)
    # The paper's ordering at eps = 0.5, sigma = 1 ...
    values = [
      theory.robust_accuracy(s, 0.5, 1.0)
      for s in ("defended", "trained", "undefended")
    ]
    self.assertEqual(values, sorted(values, reverse=True))
    # ... but not at small eps and sigma (official_code.md §9).
    self.assertLess(
      theory.robust_accuracy("trained", 0.25, 0.25),
      theory.robust_accuracy("undefended", 0.25, 0.25),
    )
    # The values official_code.md §9 tabulates.
    self.assertAlmostEqual(
      theory.robust_accuracy("defended", 0.5, 1.0), 0.85652, 5
    )
    self.assertAlmostEqual(
      theory.robust_accuracy("trained", 1.0, 2.0), 0.74334, 5
    )

  def test_vote_converges_to_eq_8(self):
    limit = theory.robust_accuracy("voted", 0.5, 1.0)
    self.assertAlmostEqual(
      limit, theory.robust_accuracy("undefended", 0.5, 1.0)
    )
    gaps = [
      abs(theory.voted_accuracy(0.5, 1.0, n) - limit) for n in (1, 11, 1001)
    ]
    self.assertEqual(gaps, sorted(gaps, reverse=True))
    self.assertLess(gaps[-1], 2e-3)
    # Without randomness every draw is sgn(x): the vote is Eq. 4.
    self.assertAlmostEqual(theory.voted_accuracy(0.5, 0.0, 11), limit)

  @parameterized.parameters(1, 11)
  def test_vote_integral_matches_simulation(self, num_votes):
    sim = theory.simulate(
      jax.random.key(1), "voted", 0.5, 1.0, num_samples=200_000,
      num_votes=num_votes, chunk=20_000,
    )  # fmt: skip
    self.assertLess(
      abs(sim["robust"] - theory.voted_accuracy(0.5, 1.0, num_votes)),
      4 * sim["stderr"],
    )

  def test_bad_inputs(self):
    for call, message in (
      (lambda: theory.robust_accuracy("smoothed", 0.5, 1.0), "Unknown stage"),
      (lambda: theory.robust_accuracy("trained", -0.1, 1.0), "eps"),
      (lambda: theory.robust_accuracy("trained", 0.1, math.nan), "sigma"),
      (lambda: theory.voted_accuracy(0.5, 1.0, 10), "odd"),
      (
        lambda: theory.simulate(
          jax.random.key(0), "voted", 0.5, 1.0, num_votes=4
        ),
        "odd",
      ),  # fmt: skip
    ):
      with self.subTest(message), self.assertRaisesRegex(ValueError, message):
        call()


if __name__ == "__main__":
  absltest.main()
