"""ArtShift: GAN-based abstract-art style transfer, from photos and paintings to an ONNX model."""

__version__ = "0.1.0"
