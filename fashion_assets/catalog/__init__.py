"""The product catalogue source: a folder in the Kaggle "Fashion Product Images (Small)" layout.

``sample`` writes a deterministic synthetic folder in that layout; ``source`` streams one into Arrow batches.
"""
