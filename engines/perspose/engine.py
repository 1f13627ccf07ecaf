"""PersPose as a lifter engine: ``load_lifter("perspose", backend=...)``.

``lift(keypoints_px [N,17,2], confidence [N,17], K, images=frames)`` -> ``joints_cam_mm [N,17,3]``
(absolute, original camera frame, OpenCV axes, mm), like the 2D->3D lifters, but the 3D comes
from the *image*: the keypoints only place the person box (Eq. 12's ``(u_c, v_c)``). Per frame:
box from the keypoints -> PR rotation ``R`` + one ``cv2.warpPerspective`` to the network crop
(Eq. 17 + Eq. 3) -> network on the runtime backend (ONNX Runtime on CPU by default) -> Eq. 5
-> ``R^T`` (Eq. 6, inside the exported graph). Frames must be undistorted to match ``K``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from engines.perspose.geometry import PerspectiveError, person_crop
from engines.perspose.model import AbsoluteFromImage, PersPoseConfig, PersPoseNet
from engines.lifter import BUNDLED_WEIGHTS, InvalidKeypointsError
from engines.runtime import file_sha256
from engines.skeleton import NUM_JOINTS

log = logging.getLogger(__name__)
DEFAULT_WEIGHTS = BUNDLED_WEIGHTS["perspose"]
BOX_SCALE = 1.25          # person box = keypoint box x 1.25 (as in training, engines.perspose.render)


class PersPoseInputError(InvalidKeypointsError):
    """Frames or keypoints that PersPose cannot use (missing frames, wrong shapes)."""


def load_model(weights: Path) -> tuple[PersPoseNet, dict]:
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    net = PersPoseNet(PersPoseConfig(**ckpt["config"]))
    net.load_state_dict(ckpt["state_dict"])
    return net.eval(), ckpt


class PersPoseEngine:
    """Image-based absolute 3D pose engine bound to one runtime backend."""
    input_names = ["image", "K_crop", "R"]
    needs_images = True   # lift() crops the frames: callers pass images=[...]
    output_names = ["joints_cam_mm"]

    def __init__(self, backend: str = "auto", weights: str | Path | None = None):
        from engines.lifter import load_checked, open_runtime   # lazy: engines.lifter imports this module lazily

        self.name = "perspose"
        self.weights = Path(weights) if weights else DEFAULT_WEIGHTS
        if not self.weights.exists():
            raise FileNotFoundError(f"weights for perspose not found at {self.weights}")
        net, ckpt = load_checked(load_model, self.weights, "PersPose weights")
        self.size = net.cfg.size
        self.rotate = ckpt.get("crop", "pr") == "pr"     # PR on for the shipped model
        self.module = AbsoluteFromImage(net).eval()
        S = self.size
        example = (torch.rand(2, 3, S, S) * 255,
                   torch.tensor([[S * 1.5, 0, (S - 1) / 2], [0, S * 1.5, (S - 1) / 2], [0, 0, 1]]).expand(2, 3, 3)
                   .contiguous(), torch.eye(3).expand(2, 3, 3).contiguous())
        self.runtime = open_runtime("perspose", backend, self.module, example, self.input_names,
                                    self.output_names, f"perspose-{file_sha256(self.weights)[:16]}")
        self.backend = self.runtime.name

    def crops(self, images, keypoints_px: np.ndarray, K: np.ndarray):
        """Network inputs for frames with a person: crops ``[M, 3, S, S]``, ``K_crop``, ``R`` and their indices."""
        imgs, Ks, Rs, idx = [], [], [], []
        for i, (img, kp) in enumerate(zip(images, keypoints_px)):
            if not np.isfinite(kp).all(-1).any():
                continue
            Ki = K[i] if K.ndim == 3 else K
            try:
                g = person_crop(Ki, kp[np.isfinite(kp).all(-1)], self.size, self.rotate, BOX_SCALE)
            except PerspectiveError as e:
                log.debug("frame %d: no crop (%s)", i, e)
                continue
            c = g.warp(np.asarray(img))
            imgs.append(c.transpose(2, 0, 1)); Ks.append(g.K_crop); Rs.append(g.R); idx.append(i)
        return (np.asarray(imgs, np.float32), np.asarray(Ks, np.float32), np.asarray(Rs, np.float32),
                np.asarray(idx, int))

    def lift(self, keypoints_px, confidence=None, K=None, images=None) -> np.ndarray:
        """Absolute camera-frame joints ``[N, 17, 3]``; NaN for frames without a person."""
        from engines.lifter import _check_K, as_keypoints

        kp = as_keypoints(keypoints_px, np.float64)
        N = len(kp)
        if images is None:
            raise PersPoseInputError("the perspose engine estimates 3D from the image: pass the frames "
                                     "(BGR uint8, one per keypoint frame) as images=...")
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = images[None]
        if len(images) != N:
            raise PersPoseInputError(f"got {len(images)} image(s) for {N} keypoint frame(s); give one frame each")
        for im in images:
            if np.asarray(im).ndim != 3 or np.asarray(im).shape[2] != 3:
                raise PersPoseInputError(f"frames must be HxWx3 BGR images, got shape {np.asarray(im).shape}")
        Kn = np.asarray(_check_K(K, N), np.float64)
        out = np.full((N, NUM_JOINTS, 3), np.nan, np.float32)
        img, Kc, R, idx = self.crops(images, kp, Kn)
        if len(idx):
            out[idx] = self.runtime.run({"image": img, "K_crop": Kc, "R": R})[0]
        return out
