"""The bundled model: a small CNN that classifies scikit-learn's 8x8 handwritten digits.

``python -m model.package --out DIR`` trains it reproducibly, measures its accuracy on a
fixed held-out split, refuses to package it below a threshold, and writes a model directory
(``signature.json`` plus a TorchScript or ``torch.export`` artifact) that the service loads.
Training needs the ``model`` dependency group (scikit-learn); serving the result does not.
"""
