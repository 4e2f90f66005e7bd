"""Type aliases and the data contract shared by every stochjax module.

Images are float32, channels-last, with values in [0, 1]:
  * one image: ``(H, W, C)``;
  * a batch: ``(N, H, W, C)``.
Labels are int32 class indices ``(N,)``. Logits are float ``(N, K)``.
Every random function takes a typed or raw JAX key as its first argument.
"""

from collections.abc import Callable

import jax

# The one name of the examples axis: the vmap over a batch's examples and the
# device mesh's data axis.
BATCH_AXIS = "batch"

PRNGKey = jax.Array
Image = jax.Array  # (H, W, C) float32 in [0, 1].
Batch = jax.Array  # (N, H, W, C) float32 in [0, 1].
Labels = jax.Array  # (N,) int32.
Logits = jax.Array  # (N, K) float.

# A defense maps one image to one image, drawing its randomness from `key`.
Defense = Callable[[PRNGKey, Image], Image]
# The model boundary: pixel-space images in, logits out (normalization inside).
LogitsFn = Callable[[Batch], Logits]
# A per-example loss: (logits (N, K), labels (N,)) -> (N,).
LossFn = Callable[[Logits, Labels], jax.Array]
# attack(key, logits_fn, images, labels) -> adversarial images (or a result).
