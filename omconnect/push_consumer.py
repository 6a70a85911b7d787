"""The push consumer: a thread that receives messages and calls a listener.

The listener returns True/None to ack or False to nack; an exception nacks too
(and is logged). `suspend` pauses delivery without leaving the group (partitions
stay owned, nothing is fetched past the buffer); `resume` continues.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from omconnect.broker.api import BrokerApi
from omconnect.consumer import ConsumerConfig, PullConsumer
from omconnect.message import Message

log = logging.getLogger(__name__)

MessageListener = Callable[[Message], bool | None]


class PushConsumer:
    """Delivers messages to ``listener`` from a background thread, one at a time,
    in partition order. `close` finishes the message in hand, commits and leaves."""

    def __init__(
        self,
        backend: BrokerApi,
        namespace: str,
        config: ConsumerConfig,
        listener: MessageListener,
        batch_size: int = 100,
    ) -> None:
        self._consumer = PullConsumer(backend, namespace, config)
        self._listener = listener
        self._batch_size = batch_size
        self._running = threading.Event()
        self._running.set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"omconnect-push-{config.group}"
        )
        self._thread.start()

    def suspend(self) -> None:
        """Stop calling the listener (after the message in hand) until `resume`."""
        self._running.clear()

    def resume(self) -> None:
        """Continue delivery after `suspend`."""
        self._running.set()

    @property
    def suspended(self) -> bool:
        """True between `suspend` and `resume`."""
        return not self._running.is_set()

    def close(self) -> None:
        """Stop delivering, commit acked offsets and leave the group."""
        self._stopped.set()
        self._running.set()
        self._thread.join()
        self._consumer.close()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._running.wait()
            if self._stopped.is_set():
                return
            for message in self._consumer.batch_receive(self._batch_size, timeout_ms=200):
                self._deliver(message)

    def _deliver(self, message: Message) -> None:
        try:
            ok = self._listener(message)
        except Exception:
            log.exception("listener failed on message %s; nacking", message.message_id)
            ok = False
        if ok is False:
            self._consumer.nack(message)
        else:
            self._consumer.ack(message)
