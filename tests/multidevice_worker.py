"""Sharded runs equal single-device runs (spawned by sharding_test).

Run as ``XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m
tests.multidevice_worker``: it runs an attack, a vote, the evaluation
protocol and a few training steps on one device and data-parallel on a mesh
of the 8 CPU devices, and exits non-zero (with the difference) if they
disagree.
"""

import os
import sys
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

import stochjax  # noqa: E402, F401  (safe XLA flags)
from stochjax import (  # noqa: E402
  attacks,
  defenses,
  evaluate,
  models,
  sharding,
  train,
)
from stochjax.data import digits  # noqa: E402

NUM = 16
DEFENSE = "gaussian_noise(sigma=0.1)|rotation(max_degrees=30)"


def _problem():
  test = digits.load_digits("test", size=16)
  model = models.get_model("ResNet8", num_classes=10, stem="cifar")
  images, labels = test.images[:NUM], test.labels[:NUM]
  variables = model.init(jax.random.key(0), images[:1])
  return model, variables, images, labels


def _check_attack_and_vote(mesh, logits_fn, images, labels):
  defense = defenses.lookup(DEFENSE)
  attack = attacks.make_pgd(
    eps=8 / 255,
    step_size=2 / 255,
    num_steps=4,
    eot_samples=4,
    eot_chunk_size=2,
    random_init=True,
    defense=defense,
  )
  key = jax.random.key(1)
  single = attack(key, logits_fn, images, labels)
  x, y = sharding.put_batch((images, labels), mesh)
  sharded = attack(key, sharding.put_replicated(logits_fn, mesh), x, y)
  assert len(sharded.sharding.device_set) == 8, sharded.sharding
  np.testing.assert_allclose(sharded, single, atol=1e-6, err_msg="attack")

  votes = dict(defense=defense, num_votes=12, chunk_size=5)
  single = evaluate.vote_counts(key, logits_fn, images, **votes)
  sharded = evaluate.vote_counts(key, logits_fn, x, **votes)
  np.testing.assert_array_equal(sharded, single, err_msg="votes")

  def protocol(mesh, batch_size):
    return evaluate.evaluate_attack(
      key,
      logits_fn,
      images,
      labels,
      attack=attack,
      defense=defense,
      num_votes=6,
      batch_size=batch_size,
      mesh=mesh,
    )

  one, spread = protocol(None, 5), protocol(mesh, 8)
  assert one == spread, (one, spread)


def _check_training(mesh, model, variables):
  source = digits.load_digits("train", size=16)

  def fit(mesh):
    with tempfile.TemporaryDirectory() as folder:
      return train.train(
        key=jax.random.key(2),
        model=model,
        train_set=source,
        defense_spec=DEFENSE,
        epochs=1,
        batch_size=256,
        checkpoint_dir=folder,
        initial_variables=variables,
        mesh=mesh,
      )

  # Gradients and batch statistics are all-reduced across devices, in
  # another order than one device sums them, and Adam divides by the
  # gradient's size, so a parameter with a near-zero gradient can move by
  # rounding noise; overall, the difference must be tiny beside what
  # training changed.
  def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])

  start, single, spread = flat(variables), flat(fit(None)), flat(fit(mesh))
  moved = np.sum(np.abs(single - start))
  differ = np.sum(np.abs(spread - single))
  print(f"training: |sharded - single|_1 / |update|_1 = {differ / moved:.2e}")
  assert moved > 0, "training changed nothing"
  assert differ <= 1e-3 * moved, f"train: {differ} vs an update of {moved}"


def main() -> int:
  if jax.device_count() != 8:
    print(f"needs 8 devices, has {jax.device_count()}", file=sys.stderr)
    return 2
  mesh = sharding.data_mesh()
  model, variables, images, labels = _problem()
  logits_fn = models.classifier(model, variables)
  _check_attack_and_vote(mesh, logits_fn, images, labels)
  _check_training(mesh, model, variables)
  print("sharded == single device")
  return 0


if __name__ == "__main__":
  sys.exit(main())
