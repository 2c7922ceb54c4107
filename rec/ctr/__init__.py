"""Everything about click-through-rate ranking except the network layers (rec/models/ctr.py)
and the raw Criteo format (rec/datasets/criteo.py): MovieLens as CTR fields, data sources,
the numpy forward pass, recall-then-rank, the training glue, and ctr-predict's scored rows
(only `training` imports paddle; `predicting` scores through it).
"""
