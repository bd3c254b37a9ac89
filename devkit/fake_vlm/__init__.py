"""A fake OpenAI-compatible vision model server for tests and local runs.

It speaks ``/v1/chat/completions`` like vLLM or a hosted API, "sees" the palette shapes of
synthetic videos by counting pixels, and misbehaves on demand (429, 5xx, truncation, ...).
"""

from devkit.fake_vlm.server import serve_in_thread

__all__ = ["serve_in_thread"]
