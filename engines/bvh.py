"""BVH reading and forward kinematics, and the CMU skeleton -> our 17 joints.

Standard BVH semantics: a joint's local transform is ``T(offset + translation) R``
with ``R`` the product of the channel rotations in the order listed (for
``Zrotation Yrotation Xrotation``: ``R = Rz Ry Rx``); a joint's global transform is
its parent's global transform times its local one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from engines.skeleton import HEAD_MODEL, J, NUM_JOINTS

CMU_UNIT_MM = 56.444  # CMU ASF units -> mm: (1/0.45) * 2.54 cm (data README)


class BVHError(ValueError):
    """A BVH file this reader cannot make sense of."""


@dataclass
class BVH:
    names: list[str]                  # joints and end sites ("<parent>_End")
    parents: np.ndarray               # [K]
    offsets: np.ndarray               # [K, 3] in file units
    channels: list[list[str]]         # per joint, e.g. ["Xposition", ..., "Xrotation"]; [] for end sites
    motion: np.ndarray                # [T, C] all channel values
    frame_time_s: float

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]

    def index(self, name: str) -> int:
        return self.names.index(name)


def read_bvh(path: str | Path) -> BVH:
    """Parse a BVH file (LF, CRLF or mixed line endings)."""
    text = Path(path).read_text(errors="replace")
    head, sep, motion = text.partition("MOTION")
    if not sep:
        raise BVHError(f"{path}: no MOTION section")
    toks = head.split()
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []
    i = 0
    pending = -1
    while i < len(toks):
        t = toks[i]
        if t in ("ROOT", "JOINT"):
            names.append(toks[i + 1]); parents.append(stack[-1] if stack else -1)
            offsets.append(np.zeros(3)); channels.append([]); pending = len(names) - 1
            i += 2
        elif t == "End":
            names.append(f"{names[stack[-1]]}_End"); parents.append(stack[-1])
            offsets.append(np.zeros(3)); channels.append([]); pending = len(names) - 1
            i += 2
        elif t == "{":
            stack.append(pending); i += 1
        elif t == "}":
            stack.pop(); i += 1
        elif t == "OFFSET":
            offsets[stack[-1]] = np.array([float(v) for v in toks[i + 1:i + 4]]); i += 4
        elif t == "CHANNELS":
            n = int(toks[i + 1]); channels[stack[-1]] = toks[i + 2:i + 2 + n]; i += 2 + n
        else:
            i += 1
    lines = [ln for ln in re.split(r"\r?\n", motion) if ln.strip()]
    try:
        n_frames = int(lines[0].split(":")[1])
        frame_time = float(lines[1].split(":")[1])
        data = np.array([[float(v) for v in ln.split()] for ln in lines[2:2 + n_frames]], dtype=np.float64)
    except (IndexError, ValueError) as e:
        raise BVHError(f"{path}: malformed MOTION section ({e})") from None
    n_ch = sum(len(c) for c in channels)
    if data.ndim != 2 or data.shape[1] != n_ch:
        raise BVHError(f"{path}: expected {n_ch} channels per frame, got {data.shape}")
    return BVH(names, np.array(parents), np.array(offsets), channels, data, frame_time)


def forward_kinematics(bvh: BVH, frames: slice | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Global positions ``[T, K, 3]`` (file units) and rotations ``[T, K, 3, 3]`` of every joint."""
    motion = bvh.motion if frames is None else bvh.motion[frames]
    T, K = motion.shape[0], len(bvh.names)
    pos = np.zeros((T, K, 3))
    rot = np.zeros((T, K, 3, 3))
    col = 0
    for k in range(K):
        ch = bvh.channels[k]
        local_t = np.broadcast_to(bvh.offsets[k], (T, 3)).copy()
        rot_ch = [c for c in ch if c.endswith("rotation")]
        angles = []
        for j, c in enumerate(ch):
            v = motion[:, col + j]
            if c.endswith("position"):
                local_t[:, "XYZ".index(c[0])] += v
            else:
                angles.append(v)
        if rot_ch:
            order = "".join(c[0] for c in rot_ch).upper()   # intrinsic, in listed order
            local_r = Rotation.from_euler(order, np.stack(angles, -1), degrees=True).as_matrix()
        else:
            local_r = np.broadcast_to(np.eye(3), (T, 3, 3))
        col += len(ch)
        p = bvh.parents[k]
        if p < 0:
            pos[:, k] = local_t
            rot[:, k] = local_r
        else:
            pos[:, k] = pos[:, p] + np.einsum("tij,tj->ti", rot[:, p], local_t)
            rot[:, k] = rot[:, p] @ local_r
    return pos, rot


def cmu_to_joints17(bvh: BVH, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Our 17 joints ``[T, 17, 3]`` (file units) from CMU FK output (see ``engines.skeleton``)."""
    ix = bvh.index
    out = np.empty(pos.shape[:1] + (NUM_JOINTS, 3))
    for side, cmu in (("left", "Left"), ("right", "Right")):
        out[:, J[f"{side}_hip"]] = pos[:, ix(f"{cmu}UpLeg")]
        out[:, J[f"{side}_knee"]] = pos[:, ix(f"{cmu}Leg")]
        out[:, J[f"{side}_ankle"]] = pos[:, ix(f"{cmu}Foot")]
        out[:, J[f"{side}_shoulder"]] = pos[:, ix(f"{cmu}Arm")]
        out[:, J[f"{side}_elbow"]] = pos[:, ix(f"{cmu}ForeArm")]
        out[:, J[f"{side}_wrist"]] = pos[:, ix(f"{cmu}Hand")]
    out[:, J["pelvis"]] = 0.5 * (out[:, J["left_hip"]] + out[:, J["right_hip"]])
    out[:, J["thorax"]] = 0.5 * (out[:, J["left_shoulder"]] + out[:, J["right_shoulder"]])
    out[:, J["spine"]] = 0.5 * (out[:, J["pelvis"]] + out[:, J["thorax"]])
    head = ix("Head")
    crown_len = np.linalg.norm(bvh.offsets[ix("Head_End")])
    for name in ("head", "nose"):
        out[:, J[name]] = pos[:, head] + np.einsum("tij,j->ti", rot[:, head], HEAD_MODEL[name] * crown_len)
    return out


def load_joints17(path: str | Path, step: int = 1, drop_tpose: bool = True) -> tuple[np.ndarray, float]:
    """Our 17 joints in millimetres, BVH world frame (Y up), for a CMU BVH file.

    Returns ``(joints_mm [T, 17, 3], frame_time_s * step)``. Frame 0 (cgspeed's
    added T-pose) is dropped by default; ``step`` subsamples frames.
    """
    bvh = read_bvh(path)
    start = 1 if drop_tpose and bvh.num_frames > 1 else 0
    pos, rot = forward_kinematics(bvh, slice(start, None, step))
    return cmu_to_joints17(bvh, pos, rot) * CMU_UNIT_MM, bvh.frame_time_s * step
