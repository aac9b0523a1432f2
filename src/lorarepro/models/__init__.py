"""Models: the bundled offline checkpoints, the papers' hub checkpoints, small networks."""
