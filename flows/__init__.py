"""Bytewax dataflows. Run with `python -m bytewax.run flows.sync:flow` and `OBSYNC_TASK=task.yaml`."""
