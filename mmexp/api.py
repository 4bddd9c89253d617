"""The Python API: train and load models from notebooks and programs (docs/portable.md).

    import mmexp
    run = mmexp.fit(["fusion=concat", "trainer.max_epochs=5"], data=frame)   # or mmexp.train(...)
    predictor = mmexp.load(run.dir)          # a bundle dir, a run dir or a checkpoint
    predictor.predict(new_frame)             # pandas Series; predict_proba: DataFrame

``fit`` composes the config exactly as ``python -m mmexp.train <overrides>`` would and runs the same ``train``:
the same run dir files and the same numbers. The caller needs no Hydra state; Hydra's singletons are restored
when it returns. ``mmexp.train`` is both the CLI module and, called, ``fit`` (see mmexp/train.py). The work is
in ``mmexp.app.api``.
"""

from __future__ import annotations

from mmexp.app.api import Run, fit, load

__all__ = ["Run", "fit", "load"]
