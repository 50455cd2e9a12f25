"""SAL-HG garment/person landmarks: definition, readers, canonical table, checks, exporters, rendering, metrics.

Typical use::

    from annotate.landmarks import read_landmarks, check_landmarks, to_coco, gaussian_heatmaps
    df = read_landmarks("sal_hg.json")              # any supported format, auto-detected
    res = check_landmarks(df, catalog=catalog)      # findings name the file and the record
    coco = to_coco(res.table)                       # pycocotools-ready

The scheme (``annotate/data/sal32.json``) numbers 32 points identically on the in-shop garment and on
the person; landmark k on both sides is a semantically associated pair (SAL-VTON, CVPR 2023).
"""

from .checks import CheckResult, Finding, apply_policy, check_landmarks, pairs_by_name
from .definition import LandmarkDefinition, definition_names, load_definition
from .exporters import export_table, to_coco, to_coco_results
from .metrics import evaluate, localisation, oks_ap
from .readers import detect_format, read_landmarks, reader_names
from .render import gaussian_heatmaps, hard_landmark_masks, landmark_union_mask, square_code_maps
from .table import flip_horizontal, from_arrays, normalise, to_arrays

__all__ = [
    "CheckResult", "Finding", "apply_policy", "check_landmarks", "pairs_by_name",
    "LandmarkDefinition", "definition_names", "load_definition",
    "export_table", "to_coco", "to_coco_results",
    "evaluate", "localisation", "oks_ap",
    "detect_format", "read_landmarks", "reader_names",
    "gaussian_heatmaps", "hard_landmark_masks", "landmark_union_mask", "square_code_maps",
    "flip_horizontal", "from_arrays", "normalise", "to_arrays",
]
