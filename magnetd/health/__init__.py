"""Health: the VPN gate and each instance's status, probed on their own thread."""
