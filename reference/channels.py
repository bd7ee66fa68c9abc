"""Channel decorrelation of channels 0 and 1, both directions (spec §6.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .spec.constants import ChannelMode

if TYPE_CHECKING:  # numpy is imported where arrays are made: vaelac decode needs none
    import numpy as np

__all__ = ["decorrelate", "restore", "side_channel_index"]


def side_channel_index(mode: int) -> int | None:
    """Which of the two coded channels carries the side signal (one extra bit), if any."""
    if mode in (ChannelMode.LEFT_SIDE, ChannelMode.MID_SIDE):
        return 1
    if mode == ChannelMode.SIDE_RIGHT:
        return 0
    return None


def decorrelate(left: np.ndarray, right: np.ndarray, mode: int) -> tuple[np.ndarray, np.ndarray]:
    """The two coded channels for ``mode`` from int64 left and right."""
    if mode == ChannelMode.INDEPENDENT:
        return left, right
    side = left - right
    if mode == ChannelMode.LEFT_SIDE:
        return left, side
    if mode == ChannelMode.SIDE_RIGHT:
        return side, right
    return (left + right) >> 1, side


def restore(first: np.ndarray, second: np.ndarray, mode: int) -> tuple[np.ndarray, np.ndarray]:
    """Left and right from the two coded channels (inverse of :func:`decorrelate`)."""
    if mode == ChannelMode.INDEPENDENT:
        return first, second
    if mode == ChannelMode.LEFT_SIDE:
        return first, first - second
    if mode == ChannelMode.SIDE_RIGHT:
        return first + second, second
    mid = (first << 1) | (second & 1)
    return (mid + second) >> 1, (mid - second) >> 1
