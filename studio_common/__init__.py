"""What every layer of the studio shares and nothing else: the user-error type, URIs and the storage
behind them, command-line argument types, and progress reporting. It imports no other package of
the project, so metadata/, curation/ and dashboard/ can all stand on it (docs/design.md, "Layers")."""
