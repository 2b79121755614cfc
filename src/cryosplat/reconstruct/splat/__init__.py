"""The per-image engine: mini-batches of views splatted and compared with the images."""
