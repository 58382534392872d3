"""The RNN-RBM (Boulanger-Lewandowski et al. 2012): see model.py."""
