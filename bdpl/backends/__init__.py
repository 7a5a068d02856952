"""Backends: one module per model adapter. Heavy SDKs are imported inside each backend."""
