"""A prepared task and what watches it run: start point, plan, topics (prepare), progress and status, Prometheus metrics."""
