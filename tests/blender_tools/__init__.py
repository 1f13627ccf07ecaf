"""Helpers for the export tests: CMU -> 17 joints, and running scripts inside Blender (bpy) in a cached venv."""
