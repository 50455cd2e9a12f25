"""bench: the benchmark harness of vtondata (metrics, presets, scoring, models and leaderboards)."""
