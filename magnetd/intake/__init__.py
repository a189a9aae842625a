"""Intake: watch the inbox, tell when a file is complete, parse it into an Item."""
