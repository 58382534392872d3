"""The window RBM (the original post's model): see model.py."""
