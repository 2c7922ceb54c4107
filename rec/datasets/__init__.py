"""Raw data and the dataset contract: the MovieLens formats (registry, download, parsing,
chunked readers, the synthetic generator), the raw Criteo format and its synthetic generator,
and `contract`, the .npy files `rec preprocess` writes and every later stage reads (with the
dataset's identity and the relevance threshold). Knows no model and no training code.
"""
