"""The two-tower rating model's domain code: training glue (config from the dataset, feeding,
predictions, tower vectors), the saved feature pickles, recommending from them and the
reasons given. The network itself is rec/models/two_tower.py; only `training` imports paddle.
"""
