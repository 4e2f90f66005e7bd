"""The problems the sharding test runs on one device and on a mesh."""

import jax
import numpy as np

from stochjax import attacks, defenses, evaluate, models, prng
from stochjax.attacks import eot, losses
from stochjax.data import digits

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
    targeted=False, num_draws=4, chunk_size=2,
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
  )


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


def flat(variables) -> np.ndarray:
  """Every leaf, raveled and concatenated (a replicated array's local copy)."""
  return np.concatenate(
    [
      np.ravel(np.asarray(x.addressable_data(0)))
      for x in jax.tree.leaves(variables)
    ]
  )
