"""The base layer: settings, the error classes, the document model, the store contract and
shared constants. Everything else (`connector`, `encoders`, `plugins`, `ops`) builds on it, and it
imports nothing of theirs."""
