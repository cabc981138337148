"""Kubernetes object specs the components render.

Pod template, network policies, scaling objects, scrape config, Karpenter specs.
"""
