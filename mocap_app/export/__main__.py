"""``python -m mocap_app.export convert clip.json --bvh out.bvh ...`` (until ``mocap-app convert`` is wired)."""
import sys

from mocap_app.export.cli import main

sys.exit(main())
