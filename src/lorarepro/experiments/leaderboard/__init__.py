"""The cross-paper leaderboard: every init and optimizer of the fine-tuning engine on the same tasks."""
