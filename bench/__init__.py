"""Benchmarks of tadformer side by side with the official ActionFormer (``python -m bench --help``)."""
