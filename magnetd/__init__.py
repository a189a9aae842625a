"""magnetd: sends magnet links dropped in an inbox folder to qBittorrent, verified by infohash."""

__version__ = "0.1.0"
