"""Bytewax dataflows. Run with `python -m bytewax.run obsync.flows.sync:flow` and `OBSYNC_TASK=task.yaml`."""
