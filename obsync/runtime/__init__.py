"""A prepared task and what watches it run: start point, plan, topics (prepare), the connectors' plain settings
(settings), progress and status, Prometheus metrics."""
