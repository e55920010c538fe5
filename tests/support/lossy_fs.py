"""The in-memory file system that can lose power now lives in tools.sim.disk (the
simulator's disk); the tests keep importing it from here."""

from tools.sim.disk import LossyFileSystem

__all__ = ["LossyFileSystem"]
