"""Sums for the rank features (numpy) with exactly the bits of numpy's plain forms.

`row_sums(rows, values, n)` is np.add.at(zeros, rows, values) a column at a time. (The
users' history products, EASE's and PureSVD's, are rec.metrics.rows_times.)
"""

from __future__ import annotations

import numpy as np


def row_sums(rows: np.ndarray, values: np.ndarray, n_rows: int) -> np.ndarray:
    """What np.add.at(zeros, rows, values) gives ((n_rows, ...) float, values' dtype), the
    same bits: a column at a time (np.add.at of 1-D arrays has a fast loop, 0.3 ms for
    170k values, where the (170k, 19) genre rows of 1,024 ml-1m users took 40 ms); each
    entry's values are still added one after the other in the order given."""
    out = np.zeros((*values.shape[1:], n_rows), values.dtype)  # a column per row of out
    flat = out.reshape(-1, n_rows)
    columns = values.reshape(len(values), len(flat)).T
    for column, into in zip(columns, flat):
        np.add.at(into, rows, np.ascontiguousarray(column))
    return np.moveaxis(out, -1, 0).copy()
