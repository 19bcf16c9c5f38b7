"""Sparse autoencoder family: KL sparsity layer, model, patch data, registry entry.

The Keras classes are imported on first use (`zoo._lazy`): `import zoo` needs no TensorFlow."""

from zoo._lazy import lazy_exports
from zoo.autoencoder.entries import PATCH_RECONSTRUCTION, sparse_autoencoder
from zoo.autoencoder.objective import sparse_code

#: Names read from their module on first use; `zoo.saving.import_keras_objects` imports them.
LAZY_EXPORTS = {
    "KLSparsity": "zoo.autoencoder.model",
    "SparseAutoencoder": "zoo.autoencoder.model",
    "kl_divergence": "zoo.autoencoder.model",
}
__getattr__, __dir__ = lazy_exports(__name__, LAZY_EXPORTS)

__all__ = [
    "KLSparsity",
    "PATCH_RECONSTRUCTION",
    "SparseAutoencoder",
    "kl_divergence",
    "sparse_autoencoder",
    "sparse_code",
]
