"""The problems the sharding test runs on one device and on a mesh."""

import re

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import (
  attacks,
  batching,
  defenses,
  evaluate,
  models,
  prng,
  sharding,
)
from stochjax.attacks import eot, losses
from stochjax.data import digits
from stochjax.defenses import core

NUM = 16
KEY = jax.random.key(1)
DEFENSE = defenses.lookup("gaussian_noise(sigma=0.1)|rotation(max_degrees=30)")
ATTACK = attacks.make_pgd(
  eps=8 / 255,
  step_size=2 / 255,
  num_steps=4,
  eot_samples=4,
  eot_chunk_size=2,
  random_init=True,
  defense=DEFENSE,
)
VOTES = dict(defense=DEFENSE, num_votes=12, chunk_size=5)


def setup():
  """(model, variables, images (16, 16, 16, 3), labels) on real digits."""
  test = digits.load_digits("test", size=16)
  model = models.get_model("ResNet8", num_classes=10, stem="cifar")
  images, labels = test.images[:NUM], test.labels[:NUM]
  return model, model.init(jax.random.key(0), images[:1]), images, labels


def logits_fn(model, variables):
  return models.classifier(model, variables)


@jax.jit
def eot_gradient(logits_fn, images, labels):
  """The EOT gradient (4 draws in chunks of 2) of the attack's loss."""
  value_and_grad = eot.make_value_and_grad(
    logits_fn=logits_fn, defense=DEFENSE, loss_fn=losses.cross_entropy,
    targeted=False, eot_samples=4, chunk_size=2,
  )  # fmt: skip
  keys = prng.per_example(KEY, images.shape[0])
  return value_and_grad(images, keys, labels)[1]


def protocol(logits_fn, images, labels, *, mesh=None, batch_size=8):
  return evaluate.evaluate_attack(
    KEY,
    logits_fn,
    images,
    labels,
    attack=ATTACK,
    defense=DEFENSE,
    num_votes=6,
    batch_size=batch_size,
    mesh=mesh,
  ).to_json()


def training(model, variables, checkpoint_dir):
  """`train.train` arguments: one epoch on the digits, from `variables`."""
  return dict(
    key=jax.random.key(2),
    model=model,
    train_set=digits.load_digits("train", size=16),
    defense=DEFENSE,
    epochs=1,
    batch_size=256,
    checkpoint_dir=checkpoint_dir,
    initial_variables=variables,
  )


# The branches of `switched`: image i is multiplied by one of these.
SCALES = (0.5, 0.25, 1.0)
# Draws of each image in `switched` (the mesh sizes divide it).
SWITCHED_DRAWS = 8


def switched(images, mesh=None) -> dict:
  """A per-image random choice between three branches (`core.switch`'s
  "auto" mode) over `SWITCHED_DRAWS` draws of each image, run by
  `batching.map_batches` (on `mesh`): ``images`` ``(N, draws + 1, ...)``,
  the draws then the input gradient of their sum, ``calls`` (branch evaluations) and
  ``collectives`` (gathers and all-to-alls in the compiled program).
  Looping over each device's own rows, every draw runs one branch forward
  and once more backward: 2 N x draws evaluations (a select runs all
  three, a loop over the gathered batch runs every image on every
  device)."""
  calls = []

  def branch(scale):
    def scaled(key, image):
      del key
      jax.debug.callback(lambda: calls.append(1))
      # A loop from a constant, as defenses' own loops (Poisson noise):
      # inside a device's loop nothing marks it as that device's value.
      return jax.lax.fori_loop(
        0, 2, lambda _, total: total + image * (scale / 2),
        jnp.zeros(image.shape, image.dtype),
      )  # fmt: skip

    return scaled

  branches = [branch(scale) for scale in SCALES]
  defend = core.over_batch(
    lambda key, image: core.random_branch(key, branches, image), draws=True
  )
  draws = jnp.arange(SWITCHED_DRAWS, dtype=jnp.uint32)

  @jax.jit
  def run(keys, x):
    draw_keys = jnp.swapaxes(prng.per_draw(keys, draws), 0, 1)
    out, pullback = jax.vjp(lambda x: defend(draw_keys, x), x)
    gradient = pullback(jnp.ones_like(out))[0]
    return jnp.concatenate([out, gradient[:, None]], 1)

  out = batching.map_batches(
    run, KEY, len(images), lambda index: [images[index]],
    batch_size=len(images), mesh=mesh,
  )  # fmt: skip
  jax.effects_barrier()
  collectives = 0
  if mesh is not None:
    x = sharding.put_batch(images, mesh)
    keys = prng.per_example(KEY, len(images))
    with sharding.using(mesh):
      compiled = run.lower(keys, x).compile().as_text()
    collectives = len(re.findall(r" (all-gather|all-to-all)\(", compiled))
  return dict(images=out, calls=len(calls), collectives=collectives)


def nudged(variables, scale: float = 1e-6):
  """`variables`, each entry scaled by ``1 + scale * normal`` (fixed key)."""
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(5), len(leaves))
  return jax.tree.unflatten(
    tree,
    [
      x * (1 + scale * jax.random.normal(k, x.shape))
      for x, k in zip(leaves, keys, strict=True)
    ],
  )


def flat(variables) -> np.ndarray:
  """Every leaf, raveled and concatenated (a replicated array's local copy)."""
  return np.concatenate(
    [
      np.ravel(np.asarray(x.addressable_data(0)))
      for x in jax.tree.leaves(variables)
    ]
  )
