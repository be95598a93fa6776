"""The node server: the asyncio runtime that drives ``core.Node`` on real sockets and disks,
the Redis protocol front end and the embedded SQLite store."""
