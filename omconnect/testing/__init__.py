"""Test helpers for connector and driver authors: the driver conformance suite."""
