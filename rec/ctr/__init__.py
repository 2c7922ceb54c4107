"""Everything about click-through-rate ranking except the network layers (rec/models/ctr.py)
and the raw Criteo format (rec/datasets/criteo.py): MovieLens as CTR fields, data sources,
the numpy forward pass, recall-then-rank, and the training glue (only `training` imports
paddle).
"""
