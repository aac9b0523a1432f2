"""Synthetic task generators (matrix factorization targets, regression tasks, masks, teacher networks)."""
