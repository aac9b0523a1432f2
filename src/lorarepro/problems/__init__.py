"""Synthetic problems: matrix factorization targets, multi-task regression, fine-tuning tasks."""
