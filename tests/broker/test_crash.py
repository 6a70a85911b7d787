"""kill -9 of the broker process under load: no acknowledged message is lost (sync flush)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from omconnect import codec
from omconnect.broker.client import BrokerClient
from omconnect.errors import OmConnectError
from omconnect.message import Message
from omconnect.testing.broker_process import start_broker


def test_kill_9_under_load_loses_no_acknowledged_message(tmp_path: Path) -> None:
    broker = start_broker(tmp_path, flush_mode="sync")
    address = f"{broker.host}:{broker.port}"
    setup = BrokerClient(address)
    setup.create_queue("ns", "q", 4)
    setup.close()
    acked: dict[int, set[bytes]] = {p: set() for p in range(4)}
    stop = threading.Event()

    def produce(partition: int) -> None:
        client = BrokerClient(address, request_timeout=5)
        n = 0
        while not stop.is_set():
            bodies = [b"p%d-%d" % (partition, n + i) for i in range(50)]
            batch = [codec.encode(Message(b, destination="q")) for b in bodies]
            try:
                client.append("ns", "q", partition, batch)
            except OmConnectError:
                return  # the broker died: this batch was never acknowledged
            acked[partition].update(bodies)
            n += 50
        client.close()

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    broker.process.send_signal(signal.SIGKILL)
    broker.process.wait()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert sum(len(s) for s in acked.values()) > 1000, "too little load to mean anything"

    restarted = start_broker(tmp_path, flush_mode="sync")
    try:
        client = BrokerClient(f"{restarted.host}:{restarted.port}")
        for partition in range(4):
            stored: list[bytes] = []
            offset = 0
            while True:
                result = client.read("ns", "q", partition, offset, 1000, 0)
                if not result.messages:
                    break
                stored.extend(codec.decode(m.encoded).body for m in result.messages)
                offset = result.next_offset
            missing = acked[partition] - set(stored)
            assert not missing, f"partition {partition} lost {len(missing)} acked messages"
            assert len(stored) == len(set(stored)), "a message was stored twice"
            assert [m.offset for m in client.read("ns", "q", partition, 0, 5, 0).messages] == [
                0,
                1,
                2,
                3,
                4,
            ]
        # The restarted broker takes new writes after the recovered tail.
        _, end = client.offset_range("ns", "q", 0)
        assert client.append("ns", "q", 0, [codec.encode(Message(b"after"))]) == [end]
        client.close()
    finally:
        restarted.stop()
