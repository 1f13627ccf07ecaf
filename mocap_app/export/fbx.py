"""Binary FBX 7.4 writer for the export rig (our own encoder; no Autodesk SDK).

Why binary: Blender's importer reads only binary FBX >= 7.1, and it is what
Maya/MotionBuilder/Unity/Unreal read fastest.

Layout of a binary FBX 7.4 file (little endian), as documented publicly
(e.g. the Blender developer blog's "FBX binary file format specification"):

* header ``Kaydara FBX Binary  \\x00\\x1a\\x00`` + uint32 version (7400);
* nodes: ``uint32 end_offset, uint32 n_props, uint32 props_bytes, uint8 name_len, name,
  properties, nested nodes, 13 zero bytes`` (the zero record closes a nested list);
* property type codes: ``C`` bool, ``Y`` int16, ``I`` int32, ``L`` int64, ``F`` float32,
  ``D`` float64, ``S`` string, ``R`` raw bytes, arrays ``i l f d b``
  (``uint32 length, uint32 encoding (1 = zlib), uint32 byte length, data``);
* a footer (id, padding to 16 bytes, version, 120 zeros, a fixed 16-byte magic).

Scene written: GlobalSettings (Y up, front +Z, right-handed X, UnitScaleFactor 1 =
centimetres, TimeMode/CustomFrameRate), one LimbNode Model per rig joint (plus an
``_end`` LimbNode per End Site) with a Skeleton NodeAttribute, a BindPose of the
T-pose, one AnimationStack/AnimationLayer, and per bone three AnimationCurveNodes
(T, R, S) each with X/Y/Z AnimationCurves. Times are KTime: 46186158000 ticks per
second (FBX 7.x). Rotations are Euler XYZ (``RotationOrder`` 0), i.e. ``Rz * Ry * Rx``.
"""
from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from mocap_app.export.rig import Rig
from mocap_app.export.rotations import Motion, to_euler

FBX_VERSION = 7400
KTIME_PER_SECOND = 46186158000
_HEADER = b"Kaydara FBX Binary  \x00\x1a\x00"
_SENTINEL = b"\x00" * 13
_FOOTER_MAGIC = bytes.fromhex("f85a8c6adef5d97eece90ce3758f290b")
# FBX TimeMode enum values of the standard rates (anything else is 14 = custom + CustomFrameRate)
_TIME_MODES = {120.0: 1, 100.0: 2, 60.0: 3, 50.0: 4, 48.0: 5, 30.0: 6, 25.0: 10, 24.0: 11, 96.0: 15, 72.0: 16}
_KEY_LINEAR = 0x00000004   # FbxAnimCurveDef::eInterpolationLinear


# ---------------------------------------------------------------------------------- encoding
class Arr:
    """A typed array property (``i`` int32, ``l`` int64, ``f`` float32, ``d`` float64)."""

    def __init__(self, code: str, values):
        self.code = code
        self.values = np.asarray(values, {"i": "<i4", "l": "<i8", "f": "<f4", "d": "<f8"}[code])


class Raw(bytes):
    """A raw-bytes (``R``) property."""


@dataclass
class Node:
    name: str
    props: list = field(default_factory=list)
    children: list["Node"] = field(default_factory=list)
    # write a (possibly empty) nested list: readers such as Assimp require a scope on every
    # object (an AnimationLayer has properties but no children, and was skipped without one)
    block: bool = False

    def add(self, name: str, *props) -> "Node":
        n = Node(name, list(props))
        self.children.append(n)
        return n


def _encode_prop(v) -> bytes:
    if isinstance(v, Arr):
        raw = v.values.tobytes()
        if len(raw) > 128:
            data = zlib.compress(raw)
            return v.code.encode() + struct.pack("<III", len(v.values), 1, len(data)) + data
        return v.code.encode() + struct.pack("<III", len(v.values), 0, len(raw)) + raw
    if isinstance(v, Raw):
        return b"R" + struct.pack("<I", len(v)) + bytes(v)
    if isinstance(v, bool):
        return b"C" + (b"\x01" if v else b"\x00")
    if isinstance(v, Long):
        return b"L" + struct.pack("<q", int(v))
    if isinstance(v, (int, np.integer)):
        v = int(v)
        return (b"I" + struct.pack("<i", v)) if -2 ** 31 <= v < 2 ** 31 else (b"L" + struct.pack("<q", v))
    if isinstance(v, (float, np.floating)):
        return b"D" + struct.pack("<d", float(v))
    if isinstance(v, (str, bytes)):
        b = v.encode("utf-8") if isinstance(v, str) else v
        return b"S" + struct.pack("<I", len(b)) + b
    raise TypeError(f"cannot encode FBX property {v!r}")


class Long(int):
    """An int that is always written as int64 (``L``): object ids and KTime values."""


def _encode_node(node: Node, offset: int) -> bytes:
    name = node.name.encode()
    props = b"".join(_encode_prop(p) for p in node.props)
    body_start = offset + 13 + len(name) + len(props)
    body = b""
    if node.children or node.block or not node.props:
        parts = []
        pos = body_start
        for c in node.children:
            enc = _encode_node(c, pos)
            parts.append(enc)
            pos += len(enc)
        body = b"".join(parts) + _SENTINEL
    end = body_start + len(body)
    return struct.pack("<IIIB", end, len(node.props), len(props), len(name)) + name + props + body


def encode_fbx(top: list[Node]) -> bytes:
    out = bytearray(_HEADER + struct.pack("<I", FBX_VERSION))
    for n in top:
        out += _encode_node(n, len(out))
    out += _SENTINEL
    out += b"mocap-app-fbx-id"            # footer id: readers do not check its value
    out += b"\x00" * 4
    out += b"\x00" * (((len(out) + 15) & ~15) - len(out) or 16)
    out += struct.pack("<I", FBX_VERSION) + b"\x00" * 120 + _FOOTER_MAGIC
    return bytes(out)


# ---------------------------------------------------------------------------------- scene
def _p(props70: Node, name: str, typ: str, label: str, flags: str, *values) -> None:
    props70.add("P", name, typ, label, flags, *values)


def _ktime(seconds: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(seconds, float) * KTIME_PER_SECOND).astype(np.int64)


def fbx_bytes(rig: Rig, motion: Motion, fps: float, take_name: str = "Take 001",
              creator: str = "mocap-app") -> bytes:
    """The whole binary FBX file for ``rig`` animated by ``motion`` at a constant ``fps``."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    n = len(motion)
    ids = iter(range(1_000_000, 10_000_000))
    times = _ktime(np.arange(n) / fps)
    stop = Long(int(times[-1]) if n else 0)
    now = time.gmtime()

    header = Node("FBXHeaderExtension")
    header.add("FBXHeaderVersion", 1003)
    header.add("FBXVersion", FBX_VERSION)
    header.add("EncryptionType", 0)
    ts = header.add("CreationTimeStamp")
    for k, v in (("Version", 1000), ("Year", now.tm_year), ("Month", now.tm_mon), ("Day", now.tm_mday),
                 ("Hour", now.tm_hour), ("Minute", now.tm_min), ("Second", now.tm_sec), ("Millisecond", 0)):
        ts.add(k, v)
    header.add("Creator", creator)

    gs = Node("GlobalSettings")
    gs.add("Version", 1000)
    p70 = gs.add("Properties70")
    for name, v in (("UpAxis", 1), ("UpAxisSign", 1), ("FrontAxis", 2), ("FrontAxisSign", 1),
                    ("CoordAxis", 0), ("CoordAxisSign", 1), ("OriginalUpAxis", 1), ("OriginalUpAxisSign", 1)):
        _p(p70, name, "int", "Integer", "", v)
    _p(p70, "UnitScaleFactor", "double", "Number", "", 1.0)
    _p(p70, "OriginalUnitScaleFactor", "double", "Number", "", 1.0)
    mode = _TIME_MODES.get(round(float(fps), 6), 14)
    _p(p70, "TimeMode", "enum", "", "", mode)
    _p(p70, "CustomFrameRate", "double", "Number", "", float(fps))
    _p(p70, "TimeSpanStart", "KTime", "Time", "", Long(0))
    _p(p70, "TimeSpanStop", "KTime", "Time", "", stop)

    doc_id = Long(next(ids))
    docs = Node("Documents")
    docs.add("Count", 1)
    doc = docs.add("Document", doc_id, "", "Scene")
    dp = doc.add("Properties70")
    _p(dp, "SourceObject", "object", "", "")
    _p(dp, "ActiveAnimStackName", "KString", "", "", take_name)
    doc.add("RootNode", Long(0))

    objects = Node("Objects")
    conns = Node("Connections")
    counts: dict[str, int] = {}

    def obj(kind: str, name: str, cls: str, sub: str) -> tuple[Long, Node]:
        i = Long(next(ids))
        counts[kind] = counts.get(kind, 0) + 1
        node = objects.add(kind, i, name.encode() + b"\x00\x01" + cls.encode(), sub)
        node.block = True
        return i, node

    def oo(child, parent):
        conns.add("C", "OO", Long(child), Long(parent))

    def op(child, parent, prop):
        conns.add("C", "OP", Long(child), Long(parent), prop)

    # bones: rig joints + End Site leaves
    names = list(rig.names)
    parents = list(rig.parents)
    offsets = [o for o in rig.offsets_cm]
    for leaf, off in sorted(rig.end_sites_cm.items()):
        names.append(f"{rig.names[leaf]}_end")
        parents.append(leaf)
        offsets.append(off)
    root_rest = np.array([0.0, float(np.median(motion.root_cm[:, 1])) if n else 0.0, 0.0])
    rest_local = [root_rest if p < 0 else np.asarray(o, float) for o, p in zip(offsets, parents)]
    rest_world = []
    for b, p in enumerate(parents):
        rest_world.append(rest_local[b] + (rest_world[p] if p >= 0 else 0.0))

    model_ids: list[Long] = []
    for b, name in enumerate(names):
        attr_id, attr = obj("NodeAttribute", name, "NodeAttribute", "LimbNode")
        ap = attr.add("Properties70")
        _p(ap, "Size", "double", "Number", "", 1.0)
        attr.add("TypeFlags", "Skeleton")
        mid, model = obj("Model", name, "Model", "LimbNode")
        model.add("Version", 232)
        mp = model.add("Properties70")
        _p(mp, "RotationOrder", "enum", "", "", 0)
        _p(mp, "InheritType", "enum", "", "", 1)
        _p(mp, "DefaultAttributeIndex", "int", "Integer", "", 0)
        t = rest_local[b]
        _p(mp, "Lcl Translation", "Lcl Translation", "", "A", float(t[0]), float(t[1]), float(t[2]))
        _p(mp, "Lcl Rotation", "Lcl Rotation", "", "A", 0.0, 0.0, 0.0)
        _p(mp, "Lcl Scaling", "Lcl Scaling", "", "A", 1.0, 1.0, 1.0)
        model.add("Shading", True)
        model.add("Culling", "CullingOff")
        model_ids.append(mid)
        oo(attr_id, mid)
        oo(mid, 0 if parents[b] < 0 else model_ids[parents[b]])

    pose_id, pose = obj("Pose", "BindPose", "Pose", "BindPose")
    pose.add("Type", "BindPose")
    pose.add("Version", 100)
    pose.add("NbPoseNodes", len(names))
    for b in range(len(names)):
        pn = pose.add("PoseNode")
        pn.add("Node", model_ids[b])
        m = np.eye(4)
        m[3, :3] = rest_world[b]          # column-major storage: translation in elements 12..14
        pn.add("Matrix", Arr("d", m.ravel()))

    stack_id, stack = obj("AnimationStack", take_name, "AnimStack", "")
    sp = stack.add("Properties70")
    for k in ("LocalStart", "ReferenceStart"):
        _p(sp, k, "KTime", "Time", "", Long(0))
    for k in ("LocalStop", "ReferenceStop"):
        _p(sp, k, "KTime", "Time", "", stop)
    layer_id, _layer = obj("AnimationLayer", "BaseLayer", "AnimLayer", "")
    oo(layer_id, stack_id)

    # Euler XYZ (Rz * Ry * Rx) == intrinsic "ZYX" read backwards
    euler_xyz = to_euler(motion.local_quat, "ZYX")[..., ::-1]      # [N, R, 3]
    for b in range(len(names)):
        if b < len(rig.names):
            rot = euler_xyz[:, b]
            trans = motion.root_cm if parents[b] < 0 else np.tile(rest_local[b], (n, 1))
        else:
            rot = np.zeros((n, 3))
            trans = np.tile(rest_local[b], (n, 1))
        channels = (("T", "Lcl Translation", trans), ("R", "Lcl Rotation", rot),
                    ("S", "Lcl Scaling", np.ones((n, 3))))
        for short, prop, values in channels:
            cn_id, cn = obj("AnimationCurveNode", short, "AnimCurveNode", "")
            cp = cn.add("Properties70")
            for a, axis in enumerate("XYZ"):
                _p(cp, f"d|{axis}", "Number", "", "A", float(values[0, a]) if n else 0.0)
            oo(cn_id, layer_id)
            op(cn_id, model_ids[b], prop)
            constant = n > 0 and np.allclose(values, values[0])
            for a, axis in enumerate("XYZ"):
                k_times = times[:1] if constant else times
                k_vals = values[:1, a] if constant else values[:, a]
                cv_id, cv = obj("AnimationCurve", "", "AnimCurve", "")
                cv.add("Default", float(values[0, a]) if n else 0.0)
                cv.add("KeyVer", 4009)
                cv.add("KeyTime", Arr("l", k_times))
                cv.add("KeyValueFloat", Arr("f", k_vals))
                cv.add("KeyAttrFlags", Arr("i", [_KEY_LINEAR]))
                cv.add("KeyAttrDataFloat", Arr("f", [0.0, 0.0, 0.0, 0.0]))
                cv.add("KeyAttrRefCount", Arr("i", [len(k_times)]))
                op(cv_id, cn_id, f"d|{axis}")

    defs = Node("Definitions")
    defs.add("Version", 100)
    defs.add("Count", sum(counts.values()) + 1)
    defs.add("ObjectType", "GlobalSettings").add("Count", 1)
    for kind, c in counts.items():
        defs.add("ObjectType", kind).add("Count", c)

    takes = Node("Takes")
    takes.add("Current", take_name)
    take = takes.add("Take", take_name)
    take.add("FileName", take_name.replace(" ", "_") + ".tak")
    take.add("LocalTime", Long(0), stop)
    take.add("ReferenceTime", Long(0), stop)

    top = [header, Node("FileId", [Raw(b"mocap-app-fileid")]),
           Node("CreationTime", [time.strftime("%Y-%m-%d %H:%M:%S:000", now)]),
           Node("Creator", [creator]), gs, docs, Node("References"), defs, objects, conns, takes]
    return encode_fbx(top)


# ---------------------------------------------------------------------------------- reading back
def parse_fbx(data: bytes) -> list[Node]:
    """Decode a binary FBX (7.x, < 7500) into nodes; used to check our own files."""
    if not data.startswith(_HEADER):
        raise ValueError("not a binary FBX file")
    version = struct.unpack_from("<I", data, 23)[0]
    if version >= 7500:
        raise ValueError(f"FBX version {version} uses 64-bit offsets; this reader handles < 7500")

    def read_node(pos: int) -> tuple[Node | None, int]:
        end, nprops, _plen, nlen = struct.unpack_from("<IIIB", data, pos)
        if end == 0:
            return None, pos + 13
        name = data[pos + 13:pos + 13 + nlen].decode()
        pos += 13 + nlen
        props = []
        for _ in range(nprops):
            code = chr(data[pos]); pos += 1
            if code in "ilfdb":
                length, enc, blen = struct.unpack_from("<III", data, pos); pos += 12
                raw = data[pos:pos + blen]; pos += blen
                if enc == 1:
                    raw = zlib.decompress(raw)
                dt = {"i": "<i4", "l": "<i8", "f": "<f4", "d": "<f8", "b": "u1"}[code]
                props.append(np.frombuffer(raw, dt, count=length))
            elif code in "SR":
                (ln,) = struct.unpack_from("<I", data, pos); pos += 4
                raw = data[pos:pos + ln]; pos += ln
                props.append(raw.decode("utf-8", "replace") if code == "S" else raw)
            else:
                fmt = {"C": "<?", "Y": "<h", "I": "<i", "L": "<q", "F": "<f", "D": "<d"}[code]
                (v,) = struct.unpack_from(fmt, data, pos); pos += struct.calcsize(fmt)
                props.append(v)
        node = Node(name, props)
        while pos < end:
            child, pos = read_node(pos)
            if child is None:
                break
            node.children.append(child)
        return node, end

    nodes, pos = [], 27
    while pos < len(data):
        node, pos = read_node(pos)
        if node is None:
            break
        nodes.append(node)
    return nodes
