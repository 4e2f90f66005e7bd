"""Users' PyTorch checkpoints, read and converted without torch.

`read(path)` parses a ``torch.save`` file (zip or legacy format) with a
restricted unpickler; `state_dict.to_flax` maps a state_dict onto a stochjax
ResNet; `cli` is the converter, run as ``python -m stochjax.convert``.
"""

from stochjax.torch_io.reader import UnsafeCheckpointError, read

__all__ = ["UnsafeCheckpointError", "read"]
