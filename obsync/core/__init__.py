"""The core: changes, positions, table schemas, errors. Imports nothing else of obsync."""
