"""rec: a command-line recommender toolbox on PaddlePaddle."""

__version__ = "0.1.0"
