"""speechbrain's lazy placeholder modules, taken out of ``sys.modules`` again.

speechbrain 1.x registers a placeholder module in ``sys.modules`` for each optional
integration (k2, flair, ...) and for deprecated paths; reading any attribute of one
imports the real module, and raises ImportError when its dependency is not installed.
Code that walks ``sys.modules`` and reads ``__file__`` of every module then crashes:
``inspect.getmodule`` (reached from torch's operator registration, among others;
speechbrain guards only calls coming from inspect.py itself) and hypothesis's test
data generation. Importing speechbrain happens as soon as ``pyannote.audio.pipelines``
is imported (it offers speechbrain embeddings), and our ECAPA model uses it directly.
Placeholders nobody has loaded are removed: importing such a module for real later
still works, or fails with its own ImportError, as usual.
"""

from __future__ import annotations

import sys


def forget_lazy_placeholders() -> int:
    """Remove speechbrain's unloaded lazy modules from ``sys.modules``; how many."""
    if "speechbrain.utils.importutils" not in sys.modules:
        return 0
    from speechbrain.utils.importutils import LazyModule

    removed = 0
    for name, module in list(sys.modules.items()):
        if isinstance(module, LazyModule) and getattr(module, "lazy_module", None) is None:
            del sys.modules[name]
            removed += 1
    return removed
