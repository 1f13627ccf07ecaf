"""Entry point of the frozen app: ``mocap-app`` (GUI without arguments, the CLI with them)."""
import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()      # the Open3D render process is a spawned child
    from mocap_app.cli import main
    sys.exit(main())
