"""The paper's experiments, built on the library; imported only by
``experiments/*.py``.

* `section4`: EOT at equal budget k x m (the main job, Tables 1-2, Figs. 1-2).
* `finetune`: fine-tuning on a defense's augmentation, accuracy by epoch.
* `figs3_4`: Figs. 3-4, attacks before and after fine-tuning.
* `section5`: Section 5's closed forms beside simulations.
* `report`: one markdown report from the experiments' workdirs.
* `setup`, `plots`: what the experiments share (keys, data, models; figures).
"""
