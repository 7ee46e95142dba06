"""A float that counts the arithmetic done on it: the FPO ports of ATen's kernels count with it.

A port of a kernel computes with :class:`Counted` values where the kernel computes in floating
point; every add, subtract, multiply and divide on one makes a new one and adds 1 to
``Counted.ops``, which a port resets before it runs. Compares, floors and the like are counted by
the port's own helpers (they return no float to count with).
"""

from __future__ import annotations


class Counted(float):
    """A float whose every arithmetic op is counted in ``Counted.ops``."""

    ops = 0

    @staticmethod
    def of(value: float) -> Counted:
        """``value`` as a :class:`Counted`, the op that made it counted."""
        Counted.ops += 1
        return Counted(value)

    def __add__(self, other):
        return Counted.of(float(self) + float(other))

    def __radd__(self, other):
        return Counted.of(float(other) + float(self))

    def __sub__(self, other):
        return Counted.of(float(self) - float(other))

    def __rsub__(self, other):
        return Counted.of(float(other) - float(self))

    def __mul__(self, other):
        return Counted.of(float(self) * float(other))

    def __rmul__(self, other):
        return Counted.of(float(other) * float(self))

    def __truediv__(self, other):
        return Counted.of(float(self) / float(other))

    def __rtruediv__(self, other):
        return Counted.of(float(other) / float(self))
