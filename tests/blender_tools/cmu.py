"""CMU BVH -> our 17 joints (mm, Y up), per the table in ``engines/skeleton.py`` (test helper only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.skeleton import HEAD_MODEL, J, NUM_JOINTS
from mocap_app.export.bvh import read_bvh

CMU_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "mocap" / "cmu"
CMU_UNIT_MM = 56.444   # CMU BVH units -> mm (README: x0.056444 m)


def cmu_joints_mm(path: str | Path, start: int = 1, stop: int | None = None) -> tuple[np.ndarray, float]:
    """Joints ``[N, 17, 3]`` in mm and the frame time; frame 0 (cgspeed T-pose) is skipped by default."""
    bvh = read_bvh(path)
    bvh.motion = bvh.motion[start:stop]
    pos = bvh.world_positions() * CMU_UNIT_MM
    rots = bvh.world_rotations()
    idx = {n: i for i, n in enumerate(bvh.names)}
    out = np.zeros((len(pos), NUM_JOINTS, 3))

    def g(name):
        return pos[:, idx[name]]
    for side, cs in (("left", "Left"), ("right", "Right")):
        out[:, J[f"{side}_hip"]] = g(f"{cs}UpLeg")
        out[:, J[f"{side}_knee"]] = g(f"{cs}Leg")
        out[:, J[f"{side}_ankle"]] = g(f"{cs}Foot")
        out[:, J[f"{side}_shoulder"]] = g(f"{cs}Arm")
        out[:, J[f"{side}_elbow"]] = g(f"{cs}ForeArm")
        out[:, J[f"{side}_wrist"]] = g(f"{cs}Hand")
    out[:, J["pelvis"]] = 0.5 * (g("LeftUpLeg") + g("RightUpLeg"))
    out[:, J["thorax"]] = 0.5 * (g("LeftArm") + g("RightArm"))
    out[:, J["spine"]] = 0.5 * (out[:, J["pelvis"]] + out[:, J["thorax"]])
    head = bvh.joints[idx["Head"]]
    crown_mm = float(np.linalg.norm(head.end_site)) * CMU_UNIT_MM
    for name in ("head", "nose"):
        out[:, J[name]] = g("Head") + rots[idx["Head"]].apply(HEAD_MODEL[name] * crown_mm)
    return out, bvh.frame_time_s
