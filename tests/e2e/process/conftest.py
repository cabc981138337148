"""Model-directory fixtures of the process tests (tests/model_dirs.py)."""

from tests.model_dirs import slow_model_dir, tiny_model_dir

__all__ = ["slow_model_dir", "tiny_model_dir"]
