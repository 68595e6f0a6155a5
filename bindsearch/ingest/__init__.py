"""Ingest: discover -> decode/preprocess -> encode -> write, one small typed stage each."""
