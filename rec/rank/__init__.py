"""组合推荐, complete: the recall channels (two-tower, EASE, popularity), their candidates,
the rank stage's features, its training (paddle) and its numpy forward pass."""
