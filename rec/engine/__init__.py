"""The paddle engine every model runs on, knowing none of them.

runtime.py: device choice, threads, data-parallel set-up, finite checks, atomic paddle.save
and checkpoint files; trainer.py: the one training loop `fit` for every objective;
inference.py: a trained network saved as a static inference model (and ONNX), loaded back
the way a server would and checked against the trained outputs. Rule: the engine imports
storage, process and the core (errors, paths, console), never a dataset, model family or
stage.
"""
