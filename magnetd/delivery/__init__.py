"""Delivery: carry items to qBittorrent, verify them by infohash, settle each file."""
