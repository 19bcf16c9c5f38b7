"""A plain NumPy sparse autoencoder: the cost and its hand-derived gradient.

It is the independent reference the Keras model is tested against, and the baseline it is
benchmarked against (`bench/sparse_autoencoder.py`). Weights use Keras' layout: `w1` is
`(inputs, hidden)` and `w2` is `(hidden, inputs)`, so `h = sigmoid(x @ w1 + b1)`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cost_and_gradient", "sgd_epoch"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def cost_and_gradient(
    params: dict[str, np.ndarray],
    x: np.ndarray,
    weight_decay: float,
    sparsity_weight: float,
    sparsity_target: float,
) -> tuple[float, dict[str, np.ndarray]]:
    """J = 1/(2N) sum ||x - o||^2 + lambda/2 (sum W1^2 + sum W2^2) + beta sum KL(rho || rho_hat).

    Args:
        params: `w1`, `b1`, `w2`, `b2`.
        x: `(N, inputs)` batch.
        weight_decay, sparsity_weight, sparsity_target: lambda, beta and rho.

    Returns:
        J and its gradient with respect to each parameter.
    """
    w1, b1, w2, b2 = params["w1"], params["b1"], params["w2"], params["b2"]
    n = len(x)
    rho = sparsity_target
    hidden = _sigmoid(x @ w1 + b1)
    output = _sigmoid(hidden @ w2 + b2)
    rho_hat = hidden.mean(axis=0)
    error = output - x
    cost = (
        0.5 * np.sum(error**2) / n
        + 0.5 * weight_decay * (np.sum(w1**2) + np.sum(w2**2))
        + sparsity_weight
        * np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    )
    # Backward pass. The sigmoid derivative is applied once per layer, and the hidden error
    # comes back through W2 (transposed), the two places a course reference got wrong.
    delta_output = error * output * (1 - output) / n
    sparsity_grad = sparsity_weight * (-rho / rho_hat + (1 - rho) / (1 - rho_hat)) / n
    delta_hidden = (delta_output @ w2.T + sparsity_grad) * hidden * (1 - hidden)
    gradient = {
        "w1": x.T @ delta_hidden + weight_decay * w1,
        "b1": delta_hidden.sum(axis=0),
        "w2": hidden.T @ delta_output + weight_decay * w2,
        "b2": delta_output.sum(axis=0),
    }
    return float(cost), gradient


def sgd_epoch(
    params: dict[str, np.ndarray],
    x: np.ndarray,
    batch_size: int,
    learning_rate: float,
    rng: np.random.Generator,
    **hyperparameters: float,
) -> float:
    """One epoch of plain mini-batch gradient descent, in place; returns the mean batch cost."""
    order = rng.permutation(len(x))
    costs = []
    for start in range(0, len(x), batch_size):
        cost, gradient = cost_and_gradient(
            params, x[order[start : start + batch_size]], **hyperparameters
        )
        for name, value in gradient.items():
            params[name] -= learning_rate * value
        costs.append(cost)
    return float(np.mean(costs))
