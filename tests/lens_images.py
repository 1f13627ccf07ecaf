"""Images for the lens and board tests: a printed chessboard, a checker frame, and any image seen through a lens."""
from __future__ import annotations

import cv2
import numpy as np


def chessboard_image(spec, px_per_square: int) -> np.ndarray:
    """``spec``'s chessboard (``cols x rows`` inner corners) with a white margin of one square, greyscale. Its
    first inner corner, board point (0, 0) mm, is at pixel ``(2, 2) * px_per_square``."""
    sq = px_per_square
    cols, rows = spec.cols + 1, spec.rows + 1                  # squares
    img = np.full(((rows + 2) * sq, (cols + 2) * sq), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                img[(r + 1) * sq:(r + 2) * sq, (c + 1) * sq:(c + 2) * sq] = 0
    return img


def checker_frame(width: int, height: int, square_px: int = 40) -> np.ndarray:
    """A ``width`` x ``height`` greyscale frame of black and white squares from the top-left corner."""
    yy, xx = np.indices((height, width))
    return (((xx // square_px) + (yy // square_px)) % 2 * 255).astype(np.uint8)


def through_lens(pinhole_image: np.ndarray, lens, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """What camera ``lens`` (``CameraIntrinsics`` with distortion) sees of a scene whose pinhole image of the same
    ``K`` is ``pinhole_image``: each lens pixel shows the pinhole pixel of its ray (black where there is none)."""
    from engines.camera import undistort_px
    grid = np.stack(np.meshgrid(np.arange(lens.width_px, dtype=np.float32),
                                np.arange(lens.height_px, dtype=np.float32)), -1)
    src = np.nan_to_num(undistort_px(grid, lens), nan=-1e4).astype(np.float32)
    return cv2.remap(pinhole_image, src[..., 0], src[..., 1], interpolation)
