"""The embedded local SLM: a bundled GGUF model served over an OpenAI-compatible API."""
