"""Training steps per second with one and with two local MultiWorkerMirroredStrategy workers,
for a small model of each family, at the same global batch.

Each measurement is a fresh job of 1 or 2 worker processes on 127.0.0.1 (`TF_CONFIG` as
`zoo train --strategy multi_worker` reads it); the chief reports the median, over epochs 2
and later, of the steps per second between an epoch's first and last training batch (so
neither TensorFlow's start-up, the tracing of the first epoch nor validation counts). Jobs run
interleaved, round after round: family by family, one worker then two.

    python bench/distributed.py [--rounds 2] [--epochs 4] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# family -> (entry, keyword of its example writer, its value: the size of the training set)
FAMILIES = {
    "autoencoder": ("sparse_autoencoder", "count", 1024),
    "recurrent": ("lstm", "per_class", 50),
    "convnets": ("three_layer_convnet", "per_class", 40),
}


def worker(name: str, data: str, epochs: int, batch_size: int, run_dir: str) -> None:
    """One worker of a job: trains `name`'s tiny preset and, on the chief, prints the result."""
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # first: before any other TF op
    import keras

    import zoo
    from zoo import strategies, training

    entry = zoo.get_entry(name)
    splits = entry.task.load(data, seed=0)
    training.set_seed(0)
    with strategy.scope():
        model = entry.build(entry.resolve("tiny"))

    class Rate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.stamps = []

        def on_train_batch_end(self, batch, logs=None):
            self.stamps.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            if epoch >= 1 and len(self.stamps) > 1:
                rates.append((len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0]))

    rates: list[float] = []
    training.fit(model, splits, run_dir, epochs=epochs, batch_size=batch_size, verbose=0,
                 callbacks=[Rate()], overwrite=True)
    if strategies.is_chief(strategy):
        print("RESULT " + json.dumps({
            "steps_per_second": statistics.median(rates),
            "steps_per_epoch": len(splits.x_train) // batch_size,
            "replicas": strategy.num_replicas_in_sync,
        }), flush=True)


def free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def job(name: str, data: Path, workers: int, args: argparse.Namespace, root: Path) -> dict:
    ports = free_ports(workers)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    run_dir = root / f"{name}-{workers}"
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", name, str(data), str(args.epochs),
             str(args.batch_size), str(run_dir)],
            env={**os.environ,
                 "TF_CONFIG": json.dumps({"cluster": cluster,
                                          "task": {"type": "worker", "index": index}})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for index in range(workers)
    ]
    try:
        outputs = [process.communicate(timeout=900)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, output in zip(processes, outputs):
        if process.returncode:
            raise RuntimeError(f"{name} with {workers} workers failed:\n{output[-3000:]}")
    line = next(l for l in outputs[0].splitlines() if l.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        name, data, epochs, batch_size, run_dir = sys.argv[2:7]
        worker(name, data, int(epochs), int(batch_size), run_dir)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch")
    args = parser.parse_args()

    import zoo

    with tempfile.TemporaryDirectory(prefix="zoo-bench-distributed-") as folder:
        root = Path(folder)
        data = {}
        for family, (name, keyword, size) in FAMILIES.items():
            data[family] = zoo.get_entry(name).task.example(root / family, 0, **{keyword: size})
        results: dict[tuple[str, int], list[float]] = {}
        steps = {}
        for round_ in range(args.rounds):
            for family, (name, _, _) in FAMILIES.items():
                for workers in (1, 2):
                    result = job(name, data[family], workers, args, root)
                    results.setdefault((family, workers), []).append(result["steps_per_second"])
                    steps[family] = result["steps_per_epoch"]
                    print(f"round {round_ + 1}: {family} ({name}), {workers} worker(s): "
                          f"{result['steps_per_second']:.1f} steps/s", flush=True)
    print(f"\nglobal batch {args.batch_size}, {args.epochs} epochs, medians of {args.rounds} "
          "rounds\n")
    print("| family (entry, tiny preset) | steps/epoch | 1 worker steps/s | 2 workers steps/s "
          "| 2 / 1 |")
    print("|---|---|---|---|---|")
    for family, (name, _, _) in FAMILIES.items():
        one = statistics.median(results[family, 1])
        two = statistics.median(results[family, 2])
        print(f"| {family} ({name}) | {steps[family]} | {one:.1f} | {two:.1f} | {two / one:.2f} |")


if __name__ == "__main__":
    main()
