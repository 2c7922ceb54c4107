"""rec: a command-line recommender toolbox on PaddlePaddle.

Layers, each with its rule (imports run downward only; tests/test_layout.py checks them):
    cli.py, stages/   the command line only: one thin module per command
    twotower/, ctr/   domain code, grouped by domain
    models/           paddle nn.Layer classes only
    trainer.py        the one training loop, `fit`; runtime.py: the paddle runtime
    datasets/         raw formats and the preprocessed dataset contract
    paths, atomic, manifest, console, errors, metrics, scoring: small generic modules
"""

__version__ = "0.1.0"
