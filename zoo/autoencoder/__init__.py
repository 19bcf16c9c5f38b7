"""Sparse autoencoder family: KL sparsity layer, model, patch data, registry entry."""

from zoo.autoencoder.entries import PATCH_RECONSTRUCTION, sparse_autoencoder
from zoo.autoencoder.model import KLSparsity, SparseAutoencoder, kl_divergence

__all__ = [
    "KLSparsity",
    "PATCH_RECONSTRUCTION",
    "SparseAutoencoder",
    "kl_divergence",
    "sparse_autoencoder",
]
