"""The small scripts that workflow rules call, one folder per paper."""
