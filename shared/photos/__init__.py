"""Pure photo processing: what a photo must be (rules), decoding and normalising it (Pillow), the zip."""
