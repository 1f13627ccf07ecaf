"""The desktop app (PySide6): ``mocap_app.ui.main_window.run_app``."""
