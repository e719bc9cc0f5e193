"""The application: runtime, CLI, lifecycle, precheck, progress, metrics, embedded servers."""
