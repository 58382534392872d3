"""The RNN-NADE (Boulanger-Lewandowski et al. 2012): see model.py."""
