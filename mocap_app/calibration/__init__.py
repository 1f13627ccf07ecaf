"""Camera calibration: profiles, manual entry and presets, checkerboard/ChArUco, auto focal from a person."""
from mocap_app.calibration.profile import (AspectRatioMismatchError, CalibrationError, CameraProfile,
                                           ProfileError, default_profile_dir, intrinsics_for_video,
                                           list_profiles, resolve_profile, save_profile)

__all__ = ["AspectRatioMismatchError", "CalibrationError", "CameraProfile", "ProfileError", "default_profile_dir",
           "intrinsics_for_video", "list_profiles", "resolve_profile", "save_profile"]
