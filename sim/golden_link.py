"""The golden model for the bench: in the bench's own process, or served from the
process that started the simulator.

:class:`GoldenOracle` wraps :class:`golden.fixed.FixedModel` with what the bench asks
of it: run training steps on the job's samples (the expected TRAIN answers), the whole
expected state (every memory word, the LFSRs, the step counter), the expected
predictions of the test pass; for a job on the dataset store (``ddfa simulate
--on-chip``), the epochs and the evaluation of :mod:`golden.onchip` on the store image
the bench uploads.

The bench can construct it itself (``golden = "local"``), but importing PyTorch inside
a simulator process takes three to five times as long as in a plain interpreter (over
10 s here, for every run), so by default :func:`sim.simulate.simulate` keeps the oracle
in its own process, where PyTorch is loaded once, and serves it over a Unix socket
(:func:`serve`); the bench talks to it through :class:`RemoteGolden`, which has the same
methods. That also lets the golden steps of a batch run on the second core while the
simulator runs the same steps (:meth:`RemoteGolden.step_async`).
"""

from __future__ import annotations

import socket
import traceback
from multiprocessing.connection import Connection

import numpy as np

__all__ = ["GoldenOracle", "LocalGolden", "RemoteGolden", "serve", "connect"]


class GoldenOracle:
    """The fixed-point golden model of one job.

    Parameters
    ----------
    config : str
        TOML file of the configuration.
    samples : str
        The ``.npz`` of :func:`sim.simulate.prepare_samples` (quantised samples), or of
        :func:`sim.simulate.prepare_store` (``store``: the dataset store's words,
        ``n_train``, ``n_test``).
    """

    def __init__(self, config: str, samples: str):
        import torch
        from ddfa.config import load_config
        from golden.fixed import FixedModel
        self.torch = torch
        self.cfg = load_config(config)
        self.model = FixedModel(self.cfg)
        s = np.load(samples)
        self.seconds = 0.0
        if "store" in s:
            self.store = s["store"].astype(np.int64).tolist()
            self.n_train, self.n_test = int(s["n_train"]), int(s["n_test"])
            return
        self.store = None
        self.x_train = torch.from_numpy(s["train_x"].astype(np.int64))
        self.y_train = s["train_y"].tolist()
        self.x_test = torch.from_numpy(s["test_x"].astype(np.int64))

    def step(self, k0: int, k1: int) -> list[int]:
        """Train on samples ``k0 .. k1-1``; the class each TRAIN must answer (the argmax
        of the output layer's forward pass, lowest index on ties)."""
        import time
        t0 = time.perf_counter()
        L = self.cfg.model.n_layers
        out = []
        with self.torch.inference_mode():
            for k in range(k0, k1):
                o = self.model.step(self.x_train[k], self.y_train[k])
                out.append(int(o[f"y{L}"].argmax()))
        self.seconds += time.perf_counter() - t0
        return out

    def train_epochs(self, first_epoch: int, epochs: int) -> int:
        """TRAIN_EPOCHS on the store image: ``epochs`` epochs from epoch ``first_epoch``
        (:func:`golden.onchip.train_epochs`); the training steps done."""
        import time
        from golden.onchip import train_epochs
        t0 = time.perf_counter()
        with self.torch.inference_mode():
            train_epochs(self.model, self.store, self.n_train, self.n_test, first_epoch=first_epoch, epochs=epochs)
        self.seconds += time.perf_counter() - t0
        return epochs * self.n_train

    def evaluate(self) -> int:
        """EVALUATE on the store image: the test records classified correctly
        (:func:`golden.onchip.evaluate`)."""
        from golden.onchip import evaluate
        return evaluate(self.model, self.store, self.n_train, self.n_test)

    def state(self) -> dict:
        """``memories`` (logical name -> int64 array, ``FixedModel.memory_words`` order),
        ``lfsr`` (states of the hidden layers' generators), ``steps``."""
        m = self.model
        return {"memories": {k: t.reshape(-1).numpy().astype(np.int64) for k, t in m.memory_tensors().items()},
                "lfsr": [s.state for s in m.lfsr], "steps": m.steps}

    def predict_test(self) -> list[int]:
        """The class the model predicts for each test sample of the job."""
        if self.x_test.shape[0] == 0:
            return []
        return self.model.predict_batch(self.x_test).tolist()

    def golden_seconds(self) -> float:
        return round(self.seconds, 3)

    def state_hash(self) -> str:
        """:meth:`golden.fixed.FixedModel.state_hash` (what ``ddfa train --model fixed``
        reports for the same steps)."""
        return self.model.state_hash()


def serve(oracle: GoldenOracle, conn: Connection) -> None:
    """Answer ``(method, args)`` requests with ``("ok", value)`` or ``("error", text)``
    until the peer sends ``None`` or hangs up."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        name, args = msg
        try:
            conn.send(("ok", getattr(oracle, name)(*args)))
        except Exception:                            # reported to the bench, which fails
            conn.send(("error", traceback.format_exc()))


class RemoteGolden:
    """The bench's end of :func:`serve`: the methods of :class:`GoldenOracle`."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._pending = False

    def _call(self, name: str, *args):
        self._send(name, *args)
        return self._recv()

    def _send(self, name: str, *args) -> None:
        if self._pending:
            raise RuntimeError("a golden request is still pending")
        self.conn.send((name, args))
        self._pending = True

    def _recv(self):
        status, value = self.conn.recv()
        self._pending = False
        if status != "ok":
            raise RuntimeError(f"the golden model failed:\n{value}")
        return value

    def step(self, k0: int, k1: int) -> list[int]:
        return self._call("step", k0, k1)

    def step_async(self, k0: int, k1: int) -> None:
        """Start :meth:`step`; :meth:`result` returns its answer (meanwhile the
        simulator runs)."""
        self._send("step", k0, k1)

    def result(self):
        return self._recv()

    def train_epochs(self, first_epoch: int, epochs: int) -> int:
        return self._call("train_epochs", first_epoch, epochs)

    def train_epochs_async(self, first_epoch: int, epochs: int) -> None:
        """Start :meth:`train_epochs`; :meth:`result` returns its answer."""
        self._send("train_epochs", first_epoch, epochs)

    def evaluate(self) -> int:
        return self._call("evaluate")

    def state(self) -> dict:
        return self._call("state")

    def predict_test(self) -> list[int]:
        return self._call("predict_test")

    def golden_seconds(self) -> float:
        return self._call("golden_seconds")

    def state_hash(self) -> str:
        return self._call("state_hash")

    def close(self) -> None:
        try:
            self.conn.send(None)
        finally:
            self.conn.close()


class LocalGolden(GoldenOracle):
    """:class:`GoldenOracle` in the bench's process, with :class:`RemoteGolden`'s
    asynchronous calls (run at once)."""

    def step_async(self, k0: int, k1: int) -> None:
        self._result = self.step(k0, k1)

    def train_epochs_async(self, first_epoch: int, epochs: int) -> None:
        self._result = self.train_epochs(first_epoch, epochs)

    def result(self):
        return self._result

    def close(self) -> None:
        pass


def connect(job: dict):
    """The bench's golden model for ``job``: :class:`RemoteGolden` when the job names a
    socket (``golden``), else a :class:`LocalGolden` in this process."""
    address = job.get("golden")
    if not address or address == "local":
        return LocalGolden(job["config"], job["samples"])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(address)
    return RemoteGolden(Connection(s.detach()))
