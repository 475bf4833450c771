"""Thin TorchServe adapters: parse and validate requests, call models/, shape the answers."""
