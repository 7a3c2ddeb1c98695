"""The embedded local SLM (a bundled GGUF served by llama.cpp) and model formats: GGUF <-> training
directory, adapter GGUFs, GGUF metadata, and serving a trained model for a while."""
