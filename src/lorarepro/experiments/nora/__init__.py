"""NoRA (Li et al.): matrix-factorization experiments of Figure 1, Table 1 and Theorems 5–6."""
