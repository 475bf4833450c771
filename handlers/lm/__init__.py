"""The language model's serving folder: handler, request fields (ours and OpenAI's), replies,
model config."""
