"""The bundled broker core: RocketMQ-style commit log + consume queues, served in-process or over TCP."""
