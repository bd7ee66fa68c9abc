"""Adapters that make `.vae` a native format of other libraries (pydub)."""
