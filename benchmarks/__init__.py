"""Benchmarks: magnetd against qBittorrent's own watched folder, on real qbittorrent-nox.

Run ``python -m benchmarks.run [--quick] [--out benchmarks/results]``; see
``benchmarks/README.md`` for what each figure means.
"""
