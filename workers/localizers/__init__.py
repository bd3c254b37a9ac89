"""Localizers: turn the frames of one chunk into events (VLM or offline CV)."""
