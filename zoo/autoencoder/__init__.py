"""Sparse autoencoder family: KL sparsity layer, model, patch data, registry entry."""

from zoo.autoencoder.entries import PATCH_RECONSTRUCTION, sparse_autoencoder
from zoo.autoencoder.model import KLSparsity, SparseAutoencoder, kl_divergence
from zoo.autoencoder.objective import sparse_code

__all__ = [
    "KLSparsity",
    "PATCH_RECONSTRUCTION",
    "SparseAutoencoder",
    "kl_divergence",
    "sparse_autoencoder",
    "sparse_code",
]
