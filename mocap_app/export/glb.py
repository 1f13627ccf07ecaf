"""glTF 2.0 binary (GLB) writer for the export rig, through ``pygltflib`` (optional dependency).

glTF's own conventions match our world frame: metres, +Y up, the asset facing +Z.
One node per rig joint (plus ``_end`` nodes for End Sites) under a skin whose
inverse bind matrices are those of the T-pose; one animation with a LINEAR
translation channel on the root and a LINEAR rotation channel (quaternions) per joint.
"""
from __future__ import annotations

import numpy as np

from mocap_app.export.rig import Rig
from mocap_app.export.rotations import Motion


class GlbUnavailable(RuntimeError):
    """pygltflib is not installed."""


def glb_bytes(rig: Rig, motion: Motion, fps: float, name: str = "mocap") -> bytes:
    try:
        import pygltflib as g
    except ImportError:  # pragma: no cover - depends on the environment
        raise GlbUnavailable("GLB export needs pygltflib: pip install pygltflib") from None
    n = len(motion)
    names = list(rig.names)
    parents = list(rig.parents)
    local = [np.asarray(o, float) / 100.0 for o in rig.offsets_cm]
    for leaf, off in sorted(rig.end_sites_cm.items()):
        names.append(f"{rig.names[leaf]}_end")
        parents.append(leaf)
        local.append(np.asarray(off, float) / 100.0)
    root_m = motion.root_cm / 100.0
    local[0] = root_m[0].copy()
    world = []
    for b, p in enumerate(parents):
        world.append(local[b] + (world[p] if p >= 0 else 0.0))

    blob = bytearray()
    views, accessors = [], []

    def add(arr: np.ndarray, comp: int, typ: str, minmax: bool = False) -> int:
        arr = np.ascontiguousarray(arr, np.float32)
        while len(blob) % 4:
            blob.append(0)
        views.append(g.BufferView(buffer=0, byteOffset=len(blob), byteLength=arr.nbytes))
        blob.extend(arr.tobytes())
        acc = g.Accessor(bufferView=len(views) - 1, componentType=comp, count=len(arr), type=typ)
        if minmax:
            acc.min = [float(v) for v in np.atleast_1d(arr.min(axis=0))]
            acc.max = [float(v) for v in np.atleast_1d(arr.max(axis=0))]
        accessors.append(acc)
        return len(accessors) - 1

    nodes = []
    for b, nm in enumerate(names):
        kids = [c for c, p in enumerate(parents) if p == b]
        nodes.append(g.Node(name=nm, translation=[float(v) for v in local[b]],
                            rotation=[0.0, 0.0, 0.0, 1.0], children=kids or None))
    ibm = np.tile(np.eye(4, dtype=np.float32), (len(names), 1, 1))
    for b in range(len(names)):
        ibm[b, 3, :3] = -world[b]          # column-major storage: translation in the last column
    ibm_acc = add(ibm.reshape(len(names), 16), g.FLOAT, g.MAT4)

    times = add(np.arange(n, dtype=np.float32) / fps, g.FLOAT, g.SCALAR, minmax=True)
    samplers, channels = [], []
    tr = add(root_m, g.FLOAT, g.VEC3)
    samplers.append(g.AnimationSampler(input=times, output=tr, interpolation="LINEAR"))
    channels.append(g.AnimationChannel(sampler=0, target=g.AnimationChannelTarget(node=0, path="translation")))
    for r in range(len(rig.names)):
        q = add(motion.local_quat[:, r], g.FLOAT, g.VEC4)
        samplers.append(g.AnimationSampler(input=times, output=q, interpolation="LINEAR"))
        channels.append(g.AnimationChannel(sampler=len(samplers) - 1,
                                           target=g.AnimationChannelTarget(node=r, path="rotation")))

    gl = g.GLTF2(
        asset=g.Asset(generator="mocap-app", version="2.0"),
        scene=0, scenes=[g.Scene(nodes=[0])], nodes=nodes,
        skins=[g.Skin(name=name, joints=list(range(len(names))), skeleton=0, inverseBindMatrices=ibm_acc)],
        animations=[g.Animation(name=name, samplers=samplers, channels=channels)],
        accessors=accessors, bufferViews=views, buffers=[g.Buffer(byteLength=len(blob))])
    gl.set_binary_blob(bytes(blob))
    return b"".join(gl.save_to_bytes())
