"""Service: the main loop and how magnetd runs under systemd and Windows."""
