"""PersPose (Hao et al., perspective encoding + perspective rotation) for the mocap product.

Image -> absolute camera-frame 3D joints. See ``notes/perspose.md`` and the paper's
Sections 3-5. Modules: ``geometry`` (PR / PE), ``render`` (synthetic training images),
``model`` (CNN + UVD/scale decoder), ``train``, ``evaluate``, ``engine`` (runtime API).
"""
