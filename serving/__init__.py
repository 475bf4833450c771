"""Running TorchServe for our models: configuration, start/stop/readiness, and the client."""
