"""Built-in connectors, one subpackage per system."""
