"""OpenPose JSON reading: every variant found in try-on data into one canonical array.

Variants (``docs/datasets.md`` 0.2): the old key ``pose_keypoints`` (VITON / CP-VTON, 18 points), and
``pose_keypoints_2d`` with 18 (COCO, MPV / DeepFashion) or 25 (BODY_25, VITON-HD) points, 3 values each
(x, y, confidence in pixels of the image; missing joints are ``0, 0, 0``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .errors import PoseFormatError

#: COCO-18 index i <- BODY_25 index BODY25_TO_COCO18[i]
BODY25_TO_COCO18 = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18])

COCO18_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
                "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
COCO18_LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
                (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
BODY25_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
                "mid_hip", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye",
                "r_ear", "l_ear", "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")


def parse_openpose(obj: dict, file: Optional[Union[str, Path]] = None, person: int = 0) -> tuple[np.ndarray, str]:
    """Parse a loaded OpenPose JSON object.

    Returns ``(keypoints, format)``: a float32 array ``(K, 3)`` with K = 18 or 25 (x, y, confidence) and
    the format ``coco18``, ``coco18_old`` (key ``pose_keypoints``) or ``body25``. Raises
    :class:`PoseFormatError` naming the file for anything it cannot interpret.
    """
    people = obj.get("people") if isinstance(obj, dict) else None
    if not isinstance(people, list):
        raise PoseFormatError("not an OpenPose JSON (no 'people' list)", file=file,
                              fix="pass an OpenPose --write_json file (keys version, people[].pose_keypoints_2d)")
    if len(people) <= person:
        raise PoseFormatError(f"no person in the file (people has {len(people)} entries)", file=file,
                              fix="re-run OpenPose on this image or drop the sample (prepare --lenient)")
    p = people[person]
    if "pose_keypoints_2d" in p:
        flat, old = p["pose_keypoints_2d"], False
    elif "pose_keypoints" in p:
        flat, old = p["pose_keypoints"], True
    else:
        raise PoseFormatError("person has neither 'pose_keypoints_2d' nor 'pose_keypoints'", file=file,
                              fix="use OpenPose JSON output (COCO-18 or BODY_25)")
    try:
        arr = np.asarray(flat, dtype=np.float32)
    except (TypeError, ValueError):
        raise PoseFormatError("keypoints are not a flat list of numbers", file=file, fix="check the JSON content")
    if arr.ndim != 1 or arr.size % 3 or arr.size // 3 not in (18, 25):
        raise PoseFormatError(f"expected 54 (COCO-18) or 75 (BODY_25) numbers, found {arr.size}", file=file,
                              fix="this reader accepts OpenPose COCO-18 or BODY_25 keypoints (x, y, confidence)")
    k = arr.reshape(-1, 3)
    fmt = "body25" if len(k) == 25 else ("coco18_old" if old else "coco18")
    return k, fmt


def read_openpose(path: Union[str, Path], person: int = 0) -> tuple[np.ndarray, str]:
    """Read an OpenPose JSON file; see :func:`parse_openpose`."""
    path = Path(path)
    try:
        obj = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PoseFormatError(f"unreadable JSON ({exc})", file=path, fix="re-export the pose file") from None
    return parse_openpose(obj, file=path, person=person)


def to_coco18(kp: np.ndarray) -> np.ndarray:
    """(25, 3) BODY_25 or (18, 3) COCO-18 -> (18, 3) COCO-18."""
    if len(kp) == 18:
        return kp
    if len(kp) == 25:
        return kp[BODY25_TO_COCO18]
    raise PoseFormatError(f"cannot convert {len(kp)} keypoints to COCO-18")


def visible(kp: np.ndarray) -> np.ndarray:
    """Boolean mask of detected joints (the loaders' test: not ``0, 0``)."""
    return ~((kp[:, 0] == 0) & (kp[:, 1] == 0))


def write_openpose(path: Union[str, Path], kp: np.ndarray, *, old_key: bool = False, crlf: bool = False,
                   face: Optional[np.ndarray] = None, hands: bool = False) -> None:
    """Write keypoints as OpenPose JSON the way the releases do (used by the fixture generators).

    ``old_key`` writes the CP-VTON ``{"version": 1.0, "people": [{"pose_keypoints": ...}]}`` form; otherwise
    OpenPose 1.3 (``pose_keypoints_2d``), with face and hand arrays when ``hands`` (VITON-HD) and CRLF line
    breaks when ``crlf``.
    """
    flat = [round(float(v), 3) for v in np.asarray(kp, np.float32).reshape(-1)]
    if old_key:
        obj = {"version": 1.0, "people": [{"face_keypoints": [], "pose_keypoints": flat,
                                             "hand_right_keypoints": [], "hand_left_keypoints": []}]}
        text = json.dumps(obj)
    else:
        person = {"person_id": [-1], "pose_keypoints_2d": flat}
        if hands:
            f = face if face is not None else np.zeros((70, 3), np.float32)
            person.update({
                "face_keypoints_2d": [round(float(v), 3) for v in np.asarray(f).reshape(-1)],
                "hand_left_keypoints_2d": [0.0] * 63, "hand_right_keypoints_2d": [0.0] * 63,
                "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
                "hand_right_keypoints_3d": []})
        nl = "\r\n" if crlf else ""  # MPV / DeepFashion files have no line breaks
        body = json.dumps(person, separators=(",", ":"))
        # OpenPose 1.3 writes a break after the version and after person_id (VITON-HD files: CRLF)
        body = body.replace('"person_id":[-1],', '"person_id":[-1],' + nl, 1)
        text = '{"version":1.3,' + nl + '"people":[' + body + "]}"
    Path(path).write_bytes(text.encode())
