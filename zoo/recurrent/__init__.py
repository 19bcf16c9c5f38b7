"""Recurrent family: RNN, LSTM and GRU cells from their equations, the BPTT sequence classifier,
accelerometer data, and the registry entries rnn/lstm/gru and keras_rnn/keras_lstm/keras_gru.

The Keras classes are imported on first use (`zoo._lazy`): `import zoo` needs no TensorFlow."""

from zoo._lazy import lazy_exports
from zoo.recurrent.entries import ACTIVITY_RECOGNITION

#: Names read from their module on first use; `zoo.saving.import_keras_objects` imports them.
LAZY_EXPORTS = {
    **dict.fromkeys(("GRUCell", "LSTMCell", "Recurrent", "RecurrentCell", "RNNCell"),
                    "zoo.recurrent.cells"),
    **dict.fromkeys(("LowPass", "Magnitude", "SensorAugmentation"), "zoo.recurrent.layers"),
    "SequenceClassifier": "zoo.recurrent.model",
}
__getattr__, __dir__ = lazy_exports(__name__, LAZY_EXPORTS)

__all__ = [
    "ACTIVITY_RECOGNITION",
    "GRUCell",
    "LSTMCell",
    "LowPass",
    "Magnitude",
    "RNNCell",
    "Recurrent",
    "RecurrentCell",
    "SensorAugmentation",
    "SequenceClassifier",
]
