"""`obsync verify`: prove that a task's topics hold exactly its source tables, and say where they do not.

- `compare`: the topic's state replayed per key (kept on disk) and its comparison with the source's rows (pure).
- `command`: reads the source at one consistent point and the topics up to it, compares, re-checks, reports.
- `report`: the text and JSON reports.
"""
