"""mocap: the desktop application (capture, keypoints, pipeline, world alignment, export, UI)."""
import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
