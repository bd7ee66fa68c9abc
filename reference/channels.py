"""Channel decorrelation of channels 0 and 1 (spec §6.1): the encoder's direction, and which coded
channel is the side. The decoder restores them in kernels.frame_pcm."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .spec.constants import ChannelMode

if TYPE_CHECKING:  # numpy is imported where arrays are made: vaelac decode needs none
    import numpy as np

__all__ = ["decorrelate", "side_channel_index"]


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
