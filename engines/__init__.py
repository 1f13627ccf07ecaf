"""Models, training and runtimes for 3D pose: the part of mocap that knows no Qt."""
from engines.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, BONES  # noqa: F401
from engines.lifter import load_lifter  # noqa: F401,E402
