"""Small, real, deterministic file contents for the demo world.

Every builder takes a `seed` and returns the same bytes for the same seed on every run:
gzip streams carry `mtime=0`, random numbers come from seeded generators, text is formatted
with fixed precision. Files are kept to a few KB so that thousands of data objects build in
seconds (most of them share content; the content store keeps each distinct file once).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import random
import struct

import numpy as np

AFQ_TRACTS = [
    "Left Thalamic Radiation",
    "Right Thalamic Radiation",
    "Left Corticospinal",
    "Right Corticospinal",
    "Left Cingulum Cingulate",
    "Right Cingulum Cingulate",
    "Left Cingulum Hippocampus",
    "Right Cingulum Hippocampus",
    "Callosum Forceps Major",
    "Callosum Forceps Minor",
    "Left IFOF",
    "Right IFOF",
    "Left ILF",
    "Right ILF",
    "Left SLF",
    "Right SLF",
    "Left Uncinate",
    "Right Uncinate",
    "Left Arcuate",
    "Right Arcuate",
]

Files = list[tuple[str, bytes]]


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _affine(voxel: float = 2.0, shape: tuple[int, ...] = (8, 8, 8)) -> np.ndarray:
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = [-voxel * (n - 1) / 2 for n in shape[:3]]
    return affine


def _phantom(seed: int, shape: tuple[int, int, int], peak: int) -> np.ndarray:
    """A bright ellipsoid "head" with a darker core and a little noise."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float64)
    centre = [(n - 1) / 2 for n in shape]
    radius = sum(((g - c) / (n / 2)) ** 2 for g, c, n in zip(grid, centre, shape, strict=True))
    image = np.where(radius < 1.0, peak, 0.0) - np.where(radius < 0.3, peak * 0.4, 0.0)
    image = image + rng.integers(0, max(2, peak // 20), size=shape)
    return image


def nifti_gz(seed: int, *, shape: tuple[int, int, int] = (8, 8, 8), peak: int = 800) -> bytes:
    """A 3D int16 NIfTI-1 image, gzipped (`*.nii.gz`)."""
    import nibabel as nib

    data = _phantom(seed, shape, peak).astype(np.int16)
    image = nib.Nifti1Image(data, _affine(2.0, shape))
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    return _gzip(image.to_bytes())


def mgz(seed: int, *, shape: tuple[int, int, int] = (8, 8, 8), labels: bool = False) -> bytes:
    """A FreeSurfer MGH volume, gzipped (`*.mgz`)."""
    import nibabel as nib

    data = _phantom(seed, shape, 110)
    if labels:
        data = np.where(data > 60, 2, np.where(data > 0, 3, 0))
        array = data.astype(np.int32)
    else:
        array = data.astype(np.uint8)
    image = nib.MGHImage(array, _affine(1.0, shape))
    return _gzip(image.to_bytes())


def dwi_files(seed: int, *, directions: int = 6) -> Files:
    """`dwi.nii.gz` (4D int16, one b0 plus `directions` b=1000 volumes), `dwi.bvals`,
    `dwi.bvecs` (FSL layout: three rows)."""
    import nibabel as nib

    shape = (8, 8, 8)
    b0 = _phantom(seed, shape, 1200)
    volumes = [b0] + [b0 * (0.3 + 0.05 * k) for k in range(directions)]
    data = np.stack(volumes, axis=-1).astype(np.int16)
    image = nib.Nifti1Image(data, _affine(2.0, shape))
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    rng = random.Random(seed)
    vectors = [(0.0, 0.0, 0.0)]
    for _ in range(directions):
        x, y, z = (rng.gauss(0, 1) for _ in range(3))
        norm = math.sqrt(x * x + y * y + z * z) or 1.0
        vectors.append((x / norm, y / norm, z / norm))
    bvals = " ".join(["0"] + ["1000"] * directions) + "\n"
    bvecs = "".join(" ".join(f"{v[axis]:.6f}" for v in vectors) + "\n" for axis in range(3))
    return [
        ("dwi.nii.gz", _gzip(image.to_bytes())),
        ("dwi.bvals", bvals.encode()),
        ("dwi.bvecs", bvecs.encode()),
    ]


def _streamlines(seed: int, count: int, points: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(count):
        start = rng.uniform(-20, 20, size=3)
        bend = rng.uniform(-10, 10, size=3)
        t = np.linspace(0.0, 1.0, points)[:, None]
        line = start + t * np.array([40.0, 0.0, 0.0]) + np.sin(np.pi * t) * bend
        lines.append(line.astype(np.float32))
    return lines


def tck(seed: int, *, count: int = 40, points: int = 16) -> bytes:
    """An MRtrix `.tck` tractogram (Float32LE)."""
    from nibabel.streamlines import TckFile, Tractogram

    tractogram = Tractogram(_streamlines(seed, count, points), affine_to_rasmm=np.eye(4))
    buffer = io.BytesIO()
    TckFile(tractogram).save(buffer)
    return buffer.getvalue()


# -- MATLAB v5 MAT-file (what AFQ's classification.mat is), written by hand ------------------

_MI_INT8, _MI_UINT16, _MI_INT32, _MI_UINT32, _MI_DOUBLE, _MI_MATRIX = 1, 4, 5, 6, 9, 14
_MX_CELL, _MX_STRUCT, _MX_CHAR, _MX_DOUBLE = 1, 2, 4, 6


def _element(kind: int, payload: bytes) -> bytes:
    return struct.pack("<II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _matrix(cls: int, dims: tuple[int, ...], body: bytes, name: str = "") -> bytes:
    flags = _element(_MI_UINT32, struct.pack("<II", cls, 0))
    shape = _element(_MI_INT32, struct.pack(f"<{len(dims)}i", *dims))
    return _element(_MI_MATRIX, flags + shape + _element(_MI_INT8, name.encode()) + body)


def _mat_char(text: str) -> bytes:
    dims = (1, len(text)) if text else (0, 0)
    return _matrix(_MX_CHAR, dims, _element(_MI_UINT16, text.encode("utf-16-le")))


def _mat_column(values: list[float]) -> bytes:
    payload = struct.pack(f"<{len(values)}d", *values)
    return _matrix(_MX_DOUBLE, (len(values), 1), _element(_MI_DOUBLE, payload))


def _mat_cell_row(items: list[bytes]) -> bytes:
    return _matrix(_MX_CELL, (1, len(items)), b"".join(items))


def _mat_struct(name: str, fields: dict[str, bytes]) -> bytes:
    width = 32
    names = b"".join(key.encode().ljust(width, b"\0") for key in fields)
    body = _element(_MI_INT32, struct.pack("<i", width)) + _element(_MI_INT8, names)
    return _matrix(_MX_STRUCT, (1, 1), body + b"".join(fields.values()), name)


def classification_mat(seed: int, *, streamlines: int = 400) -> bytes:
    """A MATLAB v5 file holding `classification = struct('names', {...}, 'index', [...])`:
    the tract name of each of `streamlines` streamlines (0 = not in any tract)."""
    rng = random.Random(seed)
    index = [float(rng.randint(0, len(AFQ_TRACTS))) for _ in range(streamlines)]
    names = _mat_cell_row([_mat_char(tract) for tract in AFQ_TRACTS])
    text = "MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Oct  4 01:47:38 2018"
    header = text.encode().ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    content = _mat_struct("classification", {"names": names, "index": _mat_column(index)})
    return header + content


def _colour(k: int) -> list[float]:
    hue = (k * 0.137) % 1.0
    return [round(0.5 + 0.5 * math.cos(2 * math.pi * (hue + s / 3)), 3) for s in range(3)]


def wmc_files(seed: int) -> Files:
    """`classification.mat` plus `tracts/` (one small JSON of streamline coordinates per
    tract and a `tracts.json` index), as white-matter-classification apps write them."""
    files: Files = [("classification.mat", classification_mat(seed))]
    index = []
    for k, tract in enumerate(AFQ_TRACTS, start=1):
        lines = _streamlines(seed * 100 + k, 3, 8)
        coords = [
            [[round(float(v), 2) for v in line[:, axis]] for axis in range(3)] for line in lines
        ]
        doc = {"name": tract, "color": _colour(k), "coords": coords}
        files.append((f"tracts/{k}.json", json.dumps(doc, separators=(",", ":")).encode()))
        index.append({"name": tract, "color": _colour(k), "filename": f"{k}.json"})
    files.append(("tracts/tracts.json", json.dumps(index, indent=2).encode()))
    return files


def tractprofile_files(seed: int, *, nodes: int = 100) -> Files:
    """`profiles/<tract>_profiles.csv` (FA/MD/RD/AD mean and sd along `nodes` nodes) for
    each AFQ tract, plus `profiles/summary.json`."""
    rng = random.Random(seed)
    files: Files = []
    summary = []
    for tract in AFQ_TRACTS:
        base_fa = 0.35 + 0.2 * rng.random()
        rows = ["node,fa,fa_sd,md,md_sd,rd,rd_sd,ad,ad_sd"]
        fa_values = []
        for node in range(1, nodes + 1):
            shape = math.sin(math.pi * node / nodes)
            fa = base_fa + 0.12 * shape + rng.gauss(0, 0.01)
            md = 0.00078 - 0.00008 * shape + rng.gauss(0, 0.00001)
            ad = md * (1 + fa)
            rd = (3 * md - ad) / 2
            fa_values.append(fa)
            rows.append(
                f"{node},{fa:.4f},{abs(rng.gauss(0.05, 0.01)):.4f},{md:.6f},"
                f"{abs(rng.gauss(0.00005, 0.00001)):.6f},{rd:.6f},"
                f"{abs(rng.gauss(0.00005, 0.00001)):.6f},{ad:.6f},"
                f"{abs(rng.gauss(0.00006, 0.00001)):.6f}"
            )
        name = tract.replace(" ", "_")
        files.append((f"profiles/{name}_profiles.csv", ("\n".join(rows) + "\n").encode()))
        summary.append(
            {"tract": tract, "nodes": nodes, "fa_mean": round(sum(fa_values) / nodes, 4)}
        )
    files.append(("profiles/summary.json", json.dumps(summary, indent=2).encode()))
    return files


# -- FreeSurfer ----------------------------------------------------------------------------

DK_REGIONS = [
    "bankssts", "caudalanteriorcingulate", "caudalmiddlefrontal", "cuneus", "entorhinal",
    "fusiform", "inferiorparietal", "inferiortemporal", "isthmuscingulate", "lateraloccipital",
    "lateralorbitofrontal", "lingual", "medialorbitofrontal", "middletemporal",
    "parahippocampal", "paracentral", "parsopercularis", "parsorbitalis", "parstriangularis",
    "pericalcarine", "postcentral", "posteriorcingulate", "precentral", "precuneus",
    "rostralanteriorcingulate", "rostralmiddlefrontal", "superiorfrontal", "superiorparietal",
    "superiortemporal", "supramarginal", "frontalpole", "temporalpole", "transversetemporal",
    "insula",
]  # fmt: skip

ASEG_STRUCTURES = [
    (4, "Left-Lateral-Ventricle", 7000), (5, "Left-Inf-Lat-Vent", 350),
    (7, "Left-Cerebellum-White-Matter", 14500), (8, "Left-Cerebellum-Cortex", 52000),
    (10, "Left-Thalamus-Proper", 7600), (11, "Left-Caudate", 3500), (12, "Left-Putamen", 4900),
    (13, "Left-Pallidum", 1900), (14, "3rd-Ventricle", 900), (15, "4th-Ventricle", 1700),
    (16, "Brain-Stem", 21000), (17, "Left-Hippocampus", 4100), (18, "Left-Amygdala", 1600),
    (24, "CSF", 1000), (26, "Left-Accumbens-area", 500), (28, "Left-VentralDC", 3900),
    (43, "Right-Lateral-Ventricle", 6800), (44, "Right-Inf-Lat-Vent", 330),
    (46, "Right-Cerebellum-White-Matter", 14200), (47, "Right-Cerebellum-Cortex", 53000),
    (49, "Right-Thalamus-Proper", 7400), (50, "Right-Caudate", 3600), (51, "Right-Putamen", 5000),
    (52, "Right-Pallidum", 1800), (53, "Right-Hippocampus", 4200), (54, "Right-Amygdala", 1700),
    (58, "Right-Accumbens-area", 550), (60, "Right-VentralDC", 3950),
    (251, "CC_Posterior", 950), (252, "CC_Mid_Posterior", 450), (253, "CC_Central", 480),
    (254, "CC_Mid_Anterior", 500), (255, "CC_Anterior", 900),
]  # fmt: skip

#: aseg.stats' `# Measure` lines as FreeSurfer writes them, each volume (mm^3) scaled per subject
ASEG_MEASURES = """\
BrainSeg, BrainSegVol, Brain Segmentation Volume, 1150000
BrainSegNotVent, BrainSegVolNotVent, Brain Segmentation Volume Without Ventricles, 1130000
lhCortex, lhCortexVol, Left hemisphere cortical gray matter volume, 240000
rhCortex, rhCortexVol, Right hemisphere cortical gray matter volume, 241000
Cortex, CortexVol, Total cortical gray matter volume, 481000
CerebralWhiteMatter, CerebralWhiteMatterVol, Total cerebral white matter volume, 470000
SubCortGray, SubCortGrayVol, Subcortical gray matter volume, 58000
TotalGray, TotalGrayVol, Total gray matter volume, 640000
Mask, MaskVol, Mask Volume, 1650000
EstimatedTotalIntraCranialVol, eTIV, Estimated Total Intracranial Volume, 1550000"""


def _stats_header(title: str, program: str, cmdline: str, subject: str) -> list[str]:
    return [
        f"# Title {title}",
        "#",
        f"# generating_program {program}",
        f"# cmdline {cmdline}",
        "# sysname  Linux",
        "# hostname demo",
        "# machine  x86_64",
        "# user     brainlife",
        "#",
        "# SUBJECTS_DIR /output/freesurfer",
        f"# subjectname {subject}",
    ]


def aseg_stats(seed: int, subject: str) -> str:
    rng = random.Random(seed)
    scale = 0.85 + 0.3 * rng.random()
    lines = _stats_header(
        "Segmentation Statistics",
        "mri_segstats",
        "mri_segstats --seg mri/aseg.mgz --sum stats/aseg.stats --pv "
        "mri/norm.mgz --empty --brainmask mri/brainmask.mgz",
        subject,
    )
    lines.append("# anatomy_type volume")
    for measure in ASEG_MEASURES.splitlines():
        *names, mm3 = measure.split(", ")
        lines.append(f"# Measure {', '.join(names)}, {float(mm3) * scale:.6f}, mm^3")
    lines.append("# NTableCols 10")
    lines.append(
        "# ColHeaders  Index SegId NVoxels Volume_mm3 StructName normMean normStdDev "
        "normMin normMax normRange"
    )
    for row, (seg, name, volume) in enumerate(ASEG_STRUCTURES, start=1):
        vol = volume * scale * (0.9 + 0.2 * rng.random())
        mean = 60 + 50 * rng.random()
        low, high = int(mean * 0.5), int(mean * 1.4)
        lines.append(
            f"{row:3d} {seg:4d} {round(vol):8d} {vol:10.1f}  {name:<32s}"
            f"{mean:8.4f} {mean * 0.12:8.4f} {low:8.4f} {high:8.4f} {high - low:8.4f}"
        )
    return "\n".join(lines) + "\n"


def aparc_stats(seed: int, subject: str, hemi: str) -> str:
    rng = random.Random(seed * 2 + (hemi == "rh"))
    lines = _stats_header(
        "Cortical Parcellation Statistics",
        "mris_anatomical_stats",
        f"mris_anatomical_stats -th3 -mgz -cortex ../label/{hemi}.cortex.label "
        f"-f ../stats/{hemi}.aparc.stats -b -a ../label/{hemi}.aparc.annot "
        f"-c ../label/aparc.annot.ctab {subject} {hemi} white",
        subject,
    )
    lines += [f"# hemi {hemi}", "# AnnotationFile ../label/" + hemi + ".aparc.annot"]
    vertices = 120000 + rng.randint(-8000, 8000)
    thickness = 2.4 + 0.2 * rng.random()
    lines += [
        f"# Measure Cortex, NumVert, Number of Vertices, {vertices}, unitless",
        f"# Measure Cortex, WhiteSurfArea, White Surface Total Area, {vertices * 0.68:.1f}, mm^2",
        f"# Measure Cortex, MeanThickness, Mean Thickness, {thickness:.5f}, mm",
        "# NTableCols 10",
        "# ColHeaders StructName NumVert SurfArea GrayVol ThickAvg ThickStd MeanCurv GausCurv "
        "FoldInd CurvInd",
    ]
    for region in DK_REGIONS:
        nvert = rng.randint(800, 12000)
        area = nvert * (0.6 + 0.2 * rng.random())
        thick = thickness + rng.uniform(-0.6, 0.6)
        lines.append(
            f"{region:<40s}{nvert:6d} {round(area):6d} {round(area * thick):7d} "
            f"{thick:5.3f} {0.4 + 0.3 * rng.random():5.3f} "
            f"{rng.uniform(0.09, 0.16):9.3f} {rng.uniform(0.01, 0.04):9.3f} "
            f"{rng.randint(5, 200):8d} {rng.uniform(0.5, 15):8.1f}"
        )
    return "\n".join(lines) + "\n"


def wmparc_stats(seed: int, subject: str) -> str:
    rng = random.Random(seed * 3 + 1)
    lines = _stats_header(
        "Segmentation Statistics",
        "mri_segstats",
        "mri_segstats --seg mri/wmparc.mgz --sum stats/wmparc.stats --pv "
        "mri/norm.mgz --excludeid 0 --brainmask mri/brainmask.mgz",
        subject,
    )
    lines += [
        "# anatomy_type volume",
        f"# Measure Mask, MaskVol, Mask Volume, {1600000 + rng.randint(-90000, 90000)}.000000, "
        "mm^3",
        "# NTableCols 10",
        "# ColHeaders  Index SegId NVoxels Volume_mm3 StructName normMean normStdDev normMin "
        "normMax normRange",
    ]
    row = 0
    for base, hemi in ((3000, "lh"), (4000, "rh")):
        for k, region in enumerate(DK_REGIONS, start=1):
            row += 1
            vol = rng.uniform(400, 12000)
            mean = rng.uniform(85, 105)
            lines.append(
                f"{row:3d} {base + k:4d} {round(vol):8d} {vol:10.1f}  "
                f"{'wm-' + hemi + '-' + region:<32s}{mean:8.4f} {mean * 0.08:8.4f} "
                f"{mean * 0.6:8.4f} {mean * 1.2:8.4f} {mean * 0.6:8.4f}"
            )
    return "\n".join(lines) + "\n"


def freesurfer_output(seed: int, subject: str, *, prefix: str = "output") -> Files:
    """A small FreeSurfer subject folder: `stats/*.stats`, `mri/*.mgz`, `scripts/`."""
    return [  # the (tiny) volumes are the same for every subject; the stats differ
        (f"{prefix}/mri/aseg.mgz", mgz(1, labels=True)),
        (f"{prefix}/mri/brainmask.mgz", mgz(1)),
        (f"{prefix}/scripts/recon-all.done", f"SUBJECT {subject}\nSTATUS 0\n".encode()),
        (f"{prefix}/stats/aseg.stats", aseg_stats(seed, subject).encode()),
        (f"{prefix}/stats/lh.aparc.stats", aparc_stats(seed, subject, "lh").encode()),
        (f"{prefix}/stats/rh.aparc.stats", aparc_stats(seed, subject, "rh").encode()),
        (f"{prefix}/stats/wmparc.stats", wmparc_stats(seed, subject).encode()),
    ]
