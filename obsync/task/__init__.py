"""The task: its file, the tables it selects, its state directory and resources."""
