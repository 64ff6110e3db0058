"""The bottom layer: the exception root, settings, model descriptions, stem presets."""
