"""Build, publish and run the service's container image without any registry on the internet.

The modules are the steps of that path, each usable on its own: ``base_image`` (a Debian bookworm
base made with debootstrap), ``wheelhouse`` (the Python dependencies downloaded on the host),
``image`` (the one ``service/Dockerfile``, built with BuildKit), ``registry`` (a local registry
standing in for ECR), ``pod`` (``docker run`` with the restricted pod's settings) and ``serve``
(all of it as one context manager for the demo). ``python -m tools.container --help`` drives them.
"""
