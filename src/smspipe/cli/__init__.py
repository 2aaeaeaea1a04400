"""The command-line layer: parses flags, calls the core, renders results."""
