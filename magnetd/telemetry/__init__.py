"""Telemetry: what magnetd tells people and programs beside its log: events and notifications."""
