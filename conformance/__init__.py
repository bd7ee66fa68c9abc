"""The `.vae` conformance kit: test vectors, hypothesis strategies and a runner for third-party
encoders and decoders."""
