"""Drivers: one per messaging engine behind `oms:<driver>://` URLs."""
