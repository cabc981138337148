"""The Pulumi program: one module per concern, composed by ``__main__.py``."""
