"""Run inside Blender (bpy): import an exported BVH/FBX and render one frame with Workbench to a PNG.

usage: python render_frame.py IN.(bvh|fbx) OUT.png FRAME

Armatures do not render, so each bone becomes a cylinder (left side red, right
side blue, centre grey) and each joint a small sphere, at the bone's posed world
position in that frame; a floor grid sits at Blender z = 0 (our y = 0). The
camera looks at the character from its front-left (our +Z is Blender -Y), so a
correct export shows an upright person facing the camera, red limbs on the
image's right side.
"""
import math
import sys
from pathlib import Path

import bpy
from mathutils import Vector


def _color(name: str):
    n = name.lower()
    if n.startswith("left"):
        return (0.85, 0.15, 0.15, 1.0)
    if n.startswith("right"):
        return (0.15, 0.3, 0.9, 1.0)
    return (0.6, 0.6, 0.6, 1.0)


def main(src: str, out: str, frame: int) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if src.lower().endswith(".bvh"):
        bpy.ops.import_anim.bvh(filepath=src, global_scale=0.01, axis_forward="-Z", axis_up="Y")
    else:
        bpy.ops.import_scene.fbx(filepath=src)
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    scene = bpy.context.scene
    scene.frame_set(frame)
    mw = arm.matrix_world
    for pb in arm.pose.bones:
        # a cylinder from the parent joint to this joint (bone tails follow each importer's own
        # bone-axis convention, joint heads are what the file defines)
        if pb.parent is not None:
            a, b = mw @ pb.parent.head, mw @ pb.head
            d = b - a
            if d.length > 1e-3:
                bpy.ops.mesh.primitive_cylinder_add(radius=0.02, depth=d.length, location=(a + b) / 2)
                cyl = bpy.context.object
                cyl.rotation_mode = "QUATERNION"
                cyl.rotation_quaternion = Vector((0, 0, 1)).rotation_difference(d.normalized())
                cyl.color = _color(pb.name)
        if not pb.name.endswith("_end"):
            bpy.ops.mesh.primitive_uv_sphere_add(radius=0.045 if "nose" in pb.name.lower() else 0.03,
                                                 location=mw @ pb.head)
            bpy.context.object.color = _color(pb.name)
    bpy.ops.mesh.primitive_plane_add(size=6, location=(0, 0, 0))
    bpy.context.object.color = (0.9, 0.9, 0.85, 1.0)
    pelvis = mw @ arm.pose.bones[0].head
    bpy.ops.object.camera_add(location=(pelvis.x + 1.4, pelvis.y - 3.2, 1.5))
    cam = bpy.context.object
    direction = Vector((pelvis.x, pelvis.y, 0.9)) - cam.location
    cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    cam.data.lens = 45
    scene.camera = cam
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.color_type = "OBJECT"
    scene.display.shading.light = "STUDIO"
    scene.render.resolution_x, scene.render.resolution_y = 640, 640
    scene.render.filepath = str(Path(out).resolve())
    scene.render.image_settings.file_format = "PNG"
    bpy.ops.render.render(write_still=True)
    print("rendered", out, "frame", frame, "camera azimuth", math.degrees(math.atan2(1.4, -3.2)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
