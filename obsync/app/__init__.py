"""The application: the CLI, the task lifecycle (start, pause, status...), precheck, and the embedded servers."""
