"""Recurrent text models and the pure-torch inference code they need (no TorchServe here)."""
