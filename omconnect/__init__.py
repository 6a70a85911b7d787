"""omconnect: an OpenMessaging Connect runtime on a bundled RocketMQ-style broker core."""

from omconnect.message import Message

__all__ = ["Message"]
__version__ = "0.1.0"
