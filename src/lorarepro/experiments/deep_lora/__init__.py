"""Deep LoRA (Yaras et al.): deep matrix factorization and completion experiments (Figures 2–5, 9, 10)."""
