"""The pre-registered analysis plan of the paper's claims, as data.

docs/analysis_plan.md says in prose what this module holds as values: what
each claim predicts, its primary comparisons, the level, the margin, the
multiplicity correction, the step choice and the screens. The report reads
the plan from here, records it (and its hash) in results.json, and refuses
results made under another plan. Changing a value here is changing the
plan: it changes `PLAN.digest()`, and the runs must be reported anew.

The decision functions map numbers to words and nothing else:

* `region`: where an interval of a difference d (EOT minus no EOT, or the
  gap after minus before fine-tuning) lies against -margin, 0 and margin;
* `comparison_words`: the region of an EOT comparison in words;
* `claim_i`, `claim_ii`, `claim_iii`: the claim-level decision from the
  primary comparisons' regions;
* `choose_step`: the step fraction with the highest calibration success.
"""

import dataclasses
import hashlib
import json

# Where an interval [low, high] of d lies (`region`), by precedence.
REGIONS = (
  "below",  # high < 0: the b side (EOT; after) is weaker.
  "above",  # low > 0 and high >= margin: b stronger, not shown within it.
  "above_within",  # low > 0 and high < margin: b stronger, by < margin.
  "within",  # -margin < low and high < margin: equivalent within +-margin.
  "not_above",  # low <= -margin, high < margin: b not stronger by margin.
  "inconclusive",  # low <= 0 and high >= margin.
)

COMPARISON_WORDS = {
  "below": "no EOT stronger",
  "above": "EOT stronger",
  "above_within": "EOT stronger, within the margin",
  "within": "within ±margin",
  "not_above": "no EOT not weaker (within the margin)",
  "inconclusive": "inconclusive",
  "untestable": "untestable",
}

CLAIM_DECISIONS = ("supported", "not supported", "inconclusive", "untestable")


@dataclasses.dataclass(frozen=True)
class Primary:
  """One primary comparison: claim, experiment (config name), defense
  entry, goal; for claims (i) and (ii) the no-EOT and EOT attacks
  ``(k, m)`` and what the claim asks of it ("non_inferiority" of no EOT,
  or "superiority" of EOT); claim (iii) asks whether the gap (defended
  minus undefended success) after fine-tuning exceeds the gap before
  ("gap_closes")."""

  claim: str
  experiment: str
  defense: str
  goal: str
  no_eot: tuple[int, int] = (0, 0)
  eot: tuple[int, int] = (0, 0)
  question: str = "non_inferiority"


def _equal_budget(claim, experiment, defense, goal, k, m, question):
  return Primary(claim, experiment, defense, goal, (k * m, 1), (k, m), question)


_CLAIM_I = (
  _equal_budget("i", "eot_ablation", "noise_injection", "untargeted", 10, 10,
                "non_inferiority"),
  _equal_budget("i", "fig1", "noise_injection", "targeted", 10, 10,
                "non_inferiority"),
  *(
    _equal_budget("i", "table1", name, goal, 10, 5, "non_inferiority")
    for name in ("rotation_45", "rotation_90")
    for goal in ("untargeted", "targeted")
  ),
  *(
    _equal_budget("i", "table2", name, "untargeted", 10, 10, "non_inferiority")
    for name in ("guo_crop", "xie_resize_pad", "kwta", "odds")
  ),
  _equal_budget("i", "table2", "sap", "untargeted", 10, 5, "non_inferiority"),
)  # fmt: skip

# Claim (ii) is one intersection-union test of three components.
_CLAIM_II = (
  _equal_budget("ii", "fig2", "smoothing_0_50", "targeted", 10, 10,
                "superiority"),
  _equal_budget("ii", "fig1", "noise_injection", "targeted", 10, 10,
                "non_inferiority"),
  _equal_budget("ii", "fig2", "smoothing_0_25", "targeted", 10, 10,
                "non_inferiority"),
)  # fmt: skip

_CLAIM_III = tuple(
  Primary("iii", experiment, name, goal, question="gap_closes")
  for experiment, names in (
    ("fig3", tuple(f"bart_k{k}" for k in range(1, 7))),
    ("fig4", ("sigma_010", "sigma_025", "sigma_050")),
  )
  for name in names
  for goal in ("untargeted", "targeted")
)


# Dated amendments to secondary analyses and procedure (docs/analysis_plan.md,
# "Amendments"); outside `Plan`, so they leave its digest (and every
# primary decision) unchanged.
AMENDED = (
  "2026-12-06",
  "2026-12-06 (replications)",
  "2026-12-06 (the book's claim)",
  "2026-12-06 (ε sensitivity in parts)",
  "2026-12-06 (the blog's black-box claim)",
)

# The (dataset, model) the plan's decisions are made on; runs of any other
# are replications (docs/analysis_plan.md, amendment 4), decided alone.
PRIMARY_SETTING = ("digits", "ResNet8")


@dataclasses.dataclass(frozen=True)
class Plan:
  """The analysis plan's parameters (docs/analysis_plan.md explains each).

  alpha: the familywise level of each claim.
  margin: delta, in rate units: "within the margin" means |d| < margin.
  min_calibration: the fewest calibration images a run may use.
  min_retained: the fewest retained evaluation images (per seed) a
    comparison may rest on, else "untestable".
  saturation: a comparison whose both sides' calibration rates lie at or
    above the upper, or at or below the lower value is "untestable".
  seeds: the seeds of each experiment's default run (pooled, stratified).
  bootstrap_resamples, bootstrap_seed: claim (iii)'s and the contrast's
    percentile bootstrap.
  primaries: every primary comparison, by claim.
  """

  version: str = "2026-12-02"
  alpha: float = 0.05
  margin: float = 0.05
  min_calibration: int = 100
  min_retained: int = 100
  saturation: tuple[float, float] = (0.05, 0.95)
  seeds: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("eot_ablation", (0, 1, 2)),
  )
  bootstrap_resamples: int = 10_000
  bootstrap_seed: int = 0
  primaries: tuple[Primary, ...] = _CLAIM_I + _CLAIM_II + _CLAIM_III

  def family(self, claim: str) -> tuple[Primary, ...]:
    return tuple(p for p in self.primaries if p.claim == claim)

  def interval_level(self, claim: str) -> float:
    """The two-sided level of the family's intervals: Bonferroni over its
    primaries for claims (i) and (iii), 1 - 2 alpha for claim (ii)'s
    intersection-union components (each tested at alpha)."""
    if claim == "ii":
      return 1 - 2 * self.alpha
    return 1 - 2 * self.alpha / len(self.family(claim))

  def seeds_of(self, experiment: str) -> tuple[int, ...]:
    return dict(self.seeds).get(experiment, (0,))

  def to_json(self) -> dict:
    """The plan as JSON values (tuples as lists), as results.json keeps it."""
    return json.loads(json.dumps(dataclasses.asdict(self)))

  def digest(self) -> str:
    """The sha256 of the plan's canonical JSON: results.json records it;
    the report refuses results under another digest."""
    text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


PLAN = Plan()


def region(low: float, high: float, margin: float) -> str:
  """Where ``[low, high]`` lies against -margin, 0 and margin (`REGIONS`,
  first match wins).

  Raises:
    ValueError: ``low > high``, NaN, or a non-positive margin.
  """
  if not (low <= high) or not margin > 0:
    raise ValueError(f"Need low <= high and margin > 0, got {low}, {high}, "
                     f"{margin}.")  # fmt: skip
  if high < 0:
    return "below"
  if low > 0:
    return "above_within" if high < margin else "above"
  if high < margin:
    return "within" if low > -margin else "not_above"
  return "inconclusive"


def comparison_words(region_name: str) -> str:
  return COMPARISON_WORDS[region_name]


def _passes(question: str, region_name: str) -> bool | None:
  """True where the comparison answers its question yes, False where the
  interval shows the opposite, None where it does neither."""
  if region_name == "untestable":
    return None
  non_inferior = region_name in ("below", "above_within", "within", "not_above")
  superior = region_name in ("above", "above_within")
  if question == "non_inferiority":
    return True if non_inferior else False if region_name == "above" else None
  if question in ("superiority", "gap_closes"):
    return True if superior else False if non_inferior else None
  raise ValueError(f"Unknown question {question!r}.")


def claim_i(region_name: str) -> str:
  """Claim (i) for one defense and goal: no EOT is not weaker than EOT by
  the margin ("supported"), EOT is stronger ("not supported"), neither
  ("inconclusive"), or the comparison was screened out ("untestable")."""
  if region_name == "untestable":
    return "untestable"
  return {True: "supported", False: "not supported", None: "inconclusive"}[
    _passes("non_inferiority", region_name)
  ]


def claim_ii(components: list[tuple[str, str]]) -> str:
  """Claim (ii), an intersection-union test: ``[(question, region)]`` for
  sigma = 0.5 (superiority) and the weak defenses (non-inferiority), each
  interval at 1 - 2 alpha. Supported when every component passes, not
  supported when one shows the opposite, else inconclusive; untestable
  when a component is."""
  if any(r == "untestable" for _, r in components):
    return "untestable"
  passes = [_passes(q, r) for q, r in components]
  if all(p is True for p in passes):
    return "supported"
  if any(p is False for p in passes):
    return "not supported"
  return "inconclusive"


def claim_iii(region_name: str) -> str:
  """Claim (iii) for one defense and goal, on d = gap after - gap before
  (gap = defended - undefended success): the gap closes ("supported",
  low > 0); it does not close by the margin ("not supported", high <
  margin, low <= 0); neither ("inconclusive"); "untestable" when the eps
  rule reached its largest candidate or too few images were retained."""
  if region_name == "untestable":
    return "untestable"
  return {True: "supported", False: "not supported", None: "inconclusive"}[
    _passes("superiority", region_name)
  ]


# The book's claim (amendment 5): the reference must itself be robust on
# the calibration images, or "slightly worse" than it says nothing.
BOOK_REFERENCE_FLOOR = 0.10


def book_claim(low: float, high: float, margin: float) -> str:
  """The book's "RSE is only slightly worse than adversarial training" on
  the interval ``[low, high]`` of d = robust accuracy of RSE − of
  adversarial training: "supported" when RSE is at most `margin` worse
  (low > −margin: non-inferiority), "not supported" when it is worse by
  more (high < −margin), else "inconclusive"."""
  if low > -margin:
    return "supported"
  if high < -margin:
    return "not supported"
  return "inconclusive"


# The blog's black-box claim (amendment 7): Square's primary budget in
# forward passes per image, EOT-Square's draws per query, the questions.
BLOG_BUDGET = 1000
BLOG_EOT_SAMPLES = 10
BLOG_QUESTIONS = {
  "blackbox_harder": "Square undefended − Square defended",
  "whitebox_works": "PGD × EOT defended − Square defended",
}


def blog_claim(regions: list[str]) -> str:
  """The blog's claim for one defense from the regions of its two
  superiority questions (black-box harder, white-box works): the
  intersection–union rule of `claim_ii`."""
  return claim_ii([("superiority", r) for r in regions])


def choose_step(candidates, calibration_rates) -> float:
  """The step fraction with the highest calibration success; a tie goes
  to the candidate listed first.

  Raises:
    ValueError: no candidates, or lists of different lengths.
  """
  candidates, rates = list(candidates), list(calibration_rates)
  if not candidates or len(candidates) != len(rates):
    raise ValueError(
      f"Need one calibration rate per candidate, got {candidates}, {rates}."
    )
  best = max(rates)
  return candidates[rates.index(best)]


def saturated(rate_a: float, rate_b: float, plan: Plan = PLAN) -> bool:
  """Both calibration rates at the same end (`Plan.saturation`)."""
  low, high = plan.saturation
  return (rate_a >= high and rate_b >= high) or (
    rate_a <= low and rate_b <= low
  )
