"""Recurrent family: RNN, LSTM and GRU cells from their equations, the BPTT sequence classifier,
accelerometer data, and the registry entries rnn/lstm/gru and keras_rnn/keras_lstm/keras_gru."""

from zoo.recurrent.cells import GRUCell, LSTMCell, Recurrent, RecurrentCell, RNNCell
from zoo.recurrent.entries import ACTIVITY_RECOGNITION
from zoo.recurrent.model import LowPass, Magnitude, SensorAugmentation, SequenceClassifier

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
