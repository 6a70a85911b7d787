"""File connectors, like Kafka's FileStream connectors: a source that tails a file
line by line (offset = byte position) and a sink that appends values as lines."""
