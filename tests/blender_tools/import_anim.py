"""Run inside Blender (bpy): import an animation file, write each bone's world head position per frame.

usage: python import_anim.py IN.(bvh|fbx|glb) OUT.json [FPS]
       python import_anim.py --jobs JOBS.json     (a list of {"src", "out", "fps"}: one Blender start)

FPS sets the scene rate before a glTF import (glTF keys are in seconds; Blender maps
them to frames at the scene rate, 24 by default).

BVH import uses Blender's defaults for axes (forward -Z, up Y -> Blender Z up) and
global_scale 0.01 (our BVH is in centimetres), FBX/GLB read their own axis and
unit settings. Output positions are Blender world coordinates in metres.
"""
import json
import sys
from pathlib import Path

import bpy


def main(src: str, out: str, fps: float | None = None) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if fps:
        bpy.context.scene.render.fps = round(fps)
        bpy.context.scene.render.fps_base = round(fps) / fps
    ext = Path(src).suffix.lower()
    if ext == ".bvh":
        res = bpy.ops.import_anim.bvh(filepath=src, global_scale=0.01, axis_forward="-Z", axis_up="Y",
                                      update_scene_fps=True, update_scene_duration=True)
    elif ext == ".fbx":
        res = bpy.ops.import_scene.fbx(filepath=src)
    elif ext in (".glb", ".gltf"):
        res = bpy.ops.import_scene.gltf(filepath=src)
    else:
        raise SystemExit(f"unknown file type {ext}")
    if "FINISHED" not in res:
        raise SystemExit(f"import of {src} failed: {res}")
    arms = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    if len(arms) != 1:
        raise SystemExit(f"expected one armature, found {len(arms)}")
    arm = arms[0]
    scene = bpy.context.scene
    action = arm.animation_data.action if arm.animation_data else None
    if action is None:
        raise SystemExit("the armature has no animation")
    f0, f1 = (int(round(v)) for v in action.frame_range)
    names = [pb.name for pb in arm.pose.bones]
    heads = []
    for f in range(f0, f1 + 1):
        scene.frame_set(f)
        mw = arm.matrix_world
        heads.append([list(mw @ pb.head) for pb in arm.pose.bones])
    Path(out).write_text(json.dumps({
        "bones": names, "fps": scene.render.fps / scene.render.fps_base,
        "frame_start": f0, "frame_end": f1, "heads_m": heads,
        "rest_heads_m": [list(arm.matrix_world @ b.head_local) for b in arm.data.bones],
    }))


if __name__ == "__main__":
    if sys.argv[1] == "--jobs":
        for job in json.loads(Path(sys.argv[2]).read_text()):
            main(job["src"], job["out"], job.get("fps"))
    else:
        main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else None)
