"""Training data: episodes read from runs, rewards, export to TRL formats, windows, demonstrations."""
