"""The paper's experiment drivers, above the library and the harness
(`stochjax.harness`); run by ``stochjax run <experiment>``.

* `section4`: EOT at equal budget k x m (the main job, Tables 1-2, Figs. 1-2).
* `finetune`: fine-tuning on a defense's augmentation, accuracy by epoch.
* `figs3_4`: Figs. 3-4, attacks before and after fine-tuning.
* `section5`: Section 5's closed forms beside simulations.
* `attacked`, `setup`, `plots`: what the drivers share (the attacked model
  of a defense entry; the starting model of fine-tuning; figures).
"""
