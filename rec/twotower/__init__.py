"""The two-tower family's domain code, one module per family of model kinds (kinds.py is
the registry of `rec train --match`): training glue (config from the dataset, feeding,
objectives, tower vectors), the saved feature pickles, folding new users in, recommending
from the vectors and the reasons given. The networks are rec/models/; paddle is imported
only where a network runs.
"""
