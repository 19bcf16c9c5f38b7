"""Finite differences for the gradient checks of hand-written layers, costs and cells."""

import numpy as np


def numeric_gradient(function, variable, epsilon=1e-6):
    """Central differences of a scalar `function()` w.r.t. every element of `variable`."""
    gradient = np.zeros(variable.shape)
    values = variable.numpy()
    for index in np.ndindex(*values.shape):
        changed = values.copy()
        changed[index] += epsilon
        variable.assign(changed)
        plus = float(function())
        changed[index] -= 2 * epsilon
        variable.assign(changed)
        minus = float(function())
        gradient[index] = (plus - minus) / (2 * epsilon)
    variable.assign(values)
    return gradient


def assert_matches_finite_differences(function, variables, rtol=1e-6, atol=1e-9):
    """The tape's gradient of a scalar `function()` w.r.t. each variable equals central
    differences (use float64)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = function()
    for variable, gradient in zip(variables, tape.gradient(value, variables)):
        np.testing.assert_allclose(gradient.numpy(), numeric_gradient(function, variable),
                                   rtol=rtol, atol=atol, err_msg=getattr(variable, "path", variable.name))
