"""The core: changes, positions, table schemas, errors, and the protocols the connectors report and are paced
through (listeners, pacing). Imports nothing else of obsync."""
