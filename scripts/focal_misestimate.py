"""How a wrong focal length changes the lifted pose: validation subjects (exact 2D), the views of
``engines.absposelifter.evaluate``, lifted with the true K and with its focal length multiplied by a factor.

    PYTHONPATH=. python scripts/focal_misestimate.py

The lifter that takes the focal length as an input (shipped since 3 Dec) turns and bends its relative pose with it;
the focal-free one (the paper's; what auto focal runs) only scales the depth. Prints MPJPE / PA-MPJPE / MRPE (mm).
"""
from __future__ import annotations


from engines import load_lifter
from engines.absposelifter.evaluate import lift_batched, scores, validation_views
from engines.lifter import FOCAL_FREE_WEIGHTS, WEIGHTS

FACTORS = (0.5, 0.7, 0.85, 1.0, 1.2, 1.4, 2.0)


def main() -> None:
    v, _ = validation_views(1234)
    print("| lifter | " + " | ".join(f"f x {k}" for k in FACTORS) + " |")
    print("|---|" + "---|" * len(FACTORS))
    for name, w in (("with focal input (shipped)", WEIGHTS["absposelifter"]), ("focal-free", FOCAL_FREE_WEIGHTS)):
        lifter = load_lifter("absposelifter", backend="onnxruntime", weights=w)
        cells = []
        for k in FACTORS:
            K = v.K.copy()
            K[:, 0, 0] *= k
            K[:, 1, 1] *= k
            s = scores(lift_batched(lifter, v.keypoints_px, K), v.joints_cam_mm)
            cells.append(f"{s['MPJPE']:.1f} / {s['PA-MPJPE']:.1f} / {s['MRPE']:.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
