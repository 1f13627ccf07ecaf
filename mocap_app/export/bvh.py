"""BVH writer for the export rig, and a small general BVH reader with forward kinematics.

Conventions written: centimetres, Y up, facing +Z; the root has OFFSET 0 and six
channels (its absolute position), every other joint three rotation channels in
the chosen order (default ``ZXY``); a joint's local rotation is the product of
the per-axis rotations in channel order (``Rz * Rx * Ry`` for ZXY), as standard BVH.

The reader is for round-trip tests of our own files and of the CMU files
(any channel order, End Sites, CR/LF line ends). Position channels are added to
the joint's OFFSET.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mocap_app.export.rig import Rig
from mocap_app.export.rotations import Motion, to_euler

VALID_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


class BvhFormatError(ValueError):
    """A file that this reader cannot parse as BVH."""


def bvh_text(rig: Rig, motion: Motion, frame_time_s: float, order: str = "ZXY", decimals: int = 4) -> str:
    """The whole BVH file as text."""
    order = order.upper()
    if order not in VALID_ORDERS:
        raise ValueError(f"rotation order {order!r} is not one of {', '.join(VALID_ORDERS)}")
    if not frame_time_s > 0:
        raise ValueError(f"frame time must be positive, got {frame_time_s}")
    rot_ch = " ".join(f"{a}rotation" for a in order)
    children = rig.children
    lines = ["HIERARCHY"]

    def emit(r: int, depth: int) -> None:
        ind = "\t" * depth
        off = " ".join(f"{v:.{decimals}f}" for v in rig.offsets_cm[r])
        head = "ROOT" if rig.parents[r] < 0 else "JOINT"
        lines.append(f"{ind}{head} {rig.names[r]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}\tOFFSET {off}")
        if rig.parents[r] < 0:
            lines.append(f"{ind}\tCHANNELS 6 Xposition Yposition Zposition {rot_ch}")
        else:
            lines.append(f"{ind}\tCHANNELS 3 {rot_ch}")
        for c in children[r]:
            emit(c, depth + 1)
        if not children[r]:
            end = rig.end_sites_cm.get(r, np.zeros(3))
            lines.append(f"{ind}\tEnd Site")
            lines.append(f"{ind}\t{{")
            lines.append(f"{ind}\t\tOFFSET " + " ".join(f"{v:.{decimals}f}" for v in end))
            lines.append(f"{ind}\t}}")
        lines.append(f"{ind}}}")

    emit(0, 0)
    # channel data in the hierarchy's depth-first order
    dfs: list[int] = []

    def walk(r: int) -> None:
        dfs.append(r)
        for c in children[r]:
            walk(c)
    walk(0)
    eul = to_euler(motion.local_quat[:, dfs], order)            # [N, R, 3] in hierarchy order
    data = np.concatenate([motion.root_cm, eul.reshape(len(motion), -1)], axis=1)
    lines += ["MOTION", f"Frames: {len(motion)}", f"Frame Time: {frame_time_s:.10f}"]
    rows = np.round(data, decimals) + 0.0            # + 0.0 turns -0.0 into 0.0
    row_fmt = " ".join([f"%.{decimals}f"] * data.shape[1])
    lines += [row_fmt % tuple(r) for r in rows]
    return "\n".join(lines) + "\n"


@dataclass
class BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    end_site: np.ndarray | None = None


@dataclass
class BvhData:
    joints: list[BvhJoint]
    frame_time_s: float
    motion: np.ndarray   # [N, channels]

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def frame_count(self) -> int:
        return len(self.motion)

    def world_positions(self) -> np.ndarray:
        """Forward kinematics: world positions ``[N, joints, 3]`` in the file's units."""
        n = len(self.motion)
        pos = np.zeros((n, len(self.joints), 3))
        glob: list[Rotation] = []
        col = 0
        for i, jt in enumerate(self.joints):
            trans = np.zeros((n, 3))
            rot_axes, rot_cols = "", []
            for ch in jt.channels:
                axis, kind = ch[0].upper(), ch[1:].lower()
                if kind == "position":
                    trans[:, "XYZ".index(axis)] = self.motion[:, col]
                else:
                    rot_axes += axis
                    rot_cols.append(col)
                col += 1
            local = (Rotation.from_euler(rot_axes, self.motion[:, rot_cols], degrees=True)
                     if rot_axes else Rotation.identity(n))
            if jt.parent < 0:
                pos[:, i] = jt.offset + trans
                glob.append(local)
            else:
                g = glob[jt.parent]
                pos[:, i] = pos[:, jt.parent] + g.apply(jt.offset + trans)
                glob.append(g * local)
        self._glob = glob
        return pos

    def world_rotations(self) -> list[Rotation]:
        """Global rotation of every joint (after :meth:`world_positions`)."""
        if not hasattr(self, "_glob"):
            self.world_positions()
        return self._glob


def parse_bvh(text: str) -> BvhData:
    """Parse BVH text (hierarchy + motion)."""
    tokens = re.split(r"\s+", text.strip())
    i = 0
    joints: list[BvhJoint] = []
    stack: list[int] = []
    in_end = False

    def expect(tok: str) -> None:
        nonlocal i
        if i >= len(tokens) or tokens[i] != tok:
            got = tokens[i] if i < len(tokens) else "end of file"
            raise BvhFormatError(f"expected {tok!r} in BVH hierarchy, found {got!r}")
        i += 1

    try:
        expect("HIERARCHY")
        while i < len(tokens) and tokens[i] != "MOTION":
            t = tokens[i]
            if t in ("ROOT", "JOINT"):
                joints.append(BvhJoint(tokens[i + 1], stack[-1] if stack else -1, np.zeros(3)))
                i += 2
                expect("{")
                stack.append(len(joints) - 1)
            elif t == "End":
                i += 2   # "End Site"
                expect("{")
                in_end = True
            elif t == "OFFSET":
                v = np.array([float(x) for x in tokens[i + 1:i + 4]])
                if in_end:
                    joints[stack[-1]].end_site = v
                else:
                    joints[stack[-1]].offset = v
                i += 4
            elif t == "CHANNELS":
                k = int(tokens[i + 1])
                joints[stack[-1]].channels = tokens[i + 2:i + 2 + k]
                i += 2 + k
            elif t == "}":
                if in_end:
                    in_end = False
                else:
                    stack.pop()
                i += 1
            else:
                raise BvhFormatError(f"unexpected token {t!r} in BVH hierarchy")
        expect("MOTION")
        expect("Frames:")
        n = int(tokens[i]); i += 1
        expect("Frame")
        expect("Time:")
        frame_time = float(tokens[i]); i += 1
        n_ch = sum(len(j.channels) for j in joints)
        values = np.array(tokens[i:i + n * n_ch], dtype=float)
    except (IndexError, ValueError) as e:
        if isinstance(e, BvhFormatError):
            raise
        raise BvhFormatError(f"malformed BVH: {e}") from None
    if not joints:
        raise BvhFormatError("BVH has no joints")
    if values.size != n * n_ch:
        raise BvhFormatError(f"BVH says {n} frames of {n_ch} channels but holds {values.size} values")
    return BvhData(joints, frame_time, values.reshape(n, n_ch))


def read_bvh(path: str | Path) -> BvhData:
    return parse_bvh(Path(path).read_text())
