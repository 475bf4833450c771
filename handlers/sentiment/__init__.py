"""The sentiment classifier's serving folder: handler, request fields, model config."""
