"""The bundled broker core.

RocketMQ-style storage (one commit log, per-partition consume queues), served
in-process or over TCP.
"""
