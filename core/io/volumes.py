"""NIfTI volumes: read and check them, then bring them onto the MNI152 2 mm grid.

Two ways onto the grid (:func:`to_mni`):

- an image already in MNI space (header space code 4 "MNI_152", 3 "Talairach" or 5 "template",
  or a known MNI grid shape at isotropic 1, 1.5, 2 or 3 mm) is **resampled** with nilearn;
- an image in native (scanner) space is **registered** to the bundled MNI152 template with
  dipy's affine registration (:func:`register_to_mni`). The result carries what an overlay
  needs (template, registered image, transform, similarity) and ``needs_review`` is True: the
  page shows the overlay and the user accepts it or not.

Registration is kept fast by optimising on 4 mm copies of both images (centre of mass, then
rigid, then affine; mutual information on 30% of the voxels, few iterations): 2-5 s.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from core.anatomy import Anatomy, load_anatomy
from core.errors import InputError
from core.io.report import ReportEntry
from core.io.safety import DEFAULT_LIMITS, PROBE_BYTES, Budget, DeclaredBytes, GzipStream, UploadLimits, is_gzip, read_declared, read_source

__all__ = ["Volume", "MNIVolume", "Registration", "read_nifti", "nifti_declared_size", "to_mni", "register_to_mni", "load_volume_to_mni"]

NIFTI1_SINGLE_MAGIC = b"n+1\x00"
NIFTI1_PAIR_MAGIC = b"ni1\x00"
NIFTI2_SINGLE_MAGIC = b"n+2\x00\r\n\x1a\n"
VOXEL_MM_RANGE = (0.05, 20.0)  # anything outside is a broken header, not a scanner setting
ANISOTROPY_WARNING = 3.0  # longest / shortest voxel edge
OBLIQUITY_WARNING_DEG = 1.0
XFORM_CODES = {0: "unknown", 1: "scanner", 2: "aligned", 3: "talairach", 4: "mni", 5: "template"}
STANDARD_CODES = (3, 4, 5)  # coordinates of a standard (template) space
# Grids MNI-space images come on (FSL 1/2 mm, nilearn/ICBM 2009 1/2 mm, SPM 1.5 and 3 mm).
KNOWN_MNI_SHAPES = {
    1.0: {(182, 218, 182), (193, 229, 193), (197, 233, 189)},
    1.5: {(121, 145, 121)},
    2.0: {(91, 109, 91), (99, 117, 95), (97, 115, 97)},
    3.0: {(61, 73, 61), (53, 63, 52)},
}
COVERAGE_ERROR = 0.5  # fraction of the MNI brain an MNI-space image must cover
COVERAGE_WARNING = 0.9
MAX_VOXELS = 1 << 29  # 2 GiB as float32: a 140 x 140 x 90 x 300 diffusion series fits
MAX_HEADER_BYTES = 1 << 20  # header plus extensions: voxel data starting later than 1 MiB is a damaged vox_offset
REGISTRATION_STEP_MM = 4.0
REGISTRATION_MIN_FOV_MM = 60.0
REGISTRATION_ITERS = {"rigid": [50, 20], "affine": [30, 10]}
REGISTRATION_SAMPLING = 0.3
POOR_SIMILARITY = 1.05  # normalised mutual information below this: the images barely match


@dataclass
class Volume:
    """A NIfTI image as read, checked.

    Attributes
    ----------
    data : float32 array, shape (x, y, z) or (x, y, z, n_volumes), finite.
    affine : (4, 4) float array, voxel indices -> world mm (RAS+), from the sform if set, else
        the qform.
    source : file name.
    nifti_version : 1 or 2.
    space : ``"mni"``, ``"talairach"``, ``"template"`` (a standard space), ``"scanner"``,
        ``"aligned"`` (native) or ``"unknown"``, from the header's sform/qform code.
    orientation : axis codes, e.g. ``"RAS"`` or ``"LPS"``.
    voxel_size_mm : (3,) voxel edge lengths in mm.
    report : findings (one ``ok`` entry, plus warnings).
    """

    data: np.ndarray
    affine: np.ndarray
    source: str
    nifti_version: int
    space: str
    orientation: str
    voxel_size_mm: tuple
    report: list = field(default_factory=list)

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def in_standard_space(self) -> bool:
        return self.space in ("mni", "talairach", "template")


@dataclass
class Registration:
    """An affine registration of a native-space image to the MNI152 template, for review.

    Attributes
    ----------
    transform : (4, 4) MNI world mm -> native world mm (maps a point of the template to the
        matching point of the native image; dipy's static-to-moving convention).
    registered : float32 (99, 117, 95), the native image resampled onto the MNI grid.
    template : float32 (99, 117, 95), the MNI152 template (0..1), background of the overlay.
    grid_affine : (4, 4) voxel -> MNI mm of both arrays.
    similarity : normalised mutual information of template and registered image inside the
        brain mask, 1 (unrelated) .. 2 (identical); below ~1.05 the result is not trustworthy.
    kind : ``"rigid"`` or ``"affine"``.
    seconds : wall time of the optimisation.
    """

    transform: np.ndarray
    registered: np.ndarray
    template: np.ndarray
    grid_affine: np.ndarray
    similarity: float
    kind: str
    seconds: float
    moving_shape: tuple = ()
    moving_affine: np.ndarray | None = None

    def apply(self, volume: Volume | np.ndarray, interpolation: str = "linear") -> np.ndarray:
        """Another image in the same native space (e.g. the FA map of the b0 that was registered)
        brought onto the MNI grid with this transform; float32 (99, 117, 95)."""
        data = volume.data if isinstance(volume, Volume) else np.asarray(volume, dtype=np.float32)
        affine = volume.affine if isinstance(volume, Volume) else self.moving_affine
        if affine is None or data.ndim != 3:
            raise InputError(f"expected a 3-D image with its affine, found shape {np.shape(data)}.", field="volume")
        return _affine_map(self.transform, data, affine, self.grid_affine, self.template.shape, interpolation)


@dataclass
class MNIVolume:
    """An image on the MNI152 2 mm grid, ready for the viewer and the DTI features.

    Attributes
    ----------
    data : float32 (99, 117, 95).
    affine : (4, 4) voxel -> MNI mm of the grid (:func:`core.anatomy.load_anatomy`'s affine).
    source : file name.
    method : ``"identity"`` (already on the grid), ``"resampled"`` (MNI space, other grid) or
        ``"registered"`` (native space, registered; see ``registration``).
    coverage : fraction of the MNI brain mask inside the image's field of view.
    registration : the :class:`Registration` when ``method == "registered"``, else None.
    report : findings, the reader's included.
    """

    data: np.ndarray
    affine: np.ndarray
    source: str
    method: str
    coverage: float
    registration: Registration | None = None
    report: list = field(default_factory=list)

    @property
    def needs_review(self) -> bool:
        """True when an automatic registration made it: show the overlay before accepting it."""
        return self.method == "registered"


# ---------------------------------------------------------------- reading


def _describe_magic(raw: bytes) -> str:
    """What the first bytes look like, for a message."""
    if not raw:
        return "an empty file"
    if is_gzip(raw):
        return "gzip-compressed data (name the file .nii.gz)"
    if raw[:4] == b"PK\x03\x04":
        return "a zip archive"
    if raw[128:132] == b"DICM":
        return "a DICOM file (convert it to NIfTI, e.g. with dcm2niix)"
    if raw[344:348] == NIFTI1_PAIR_MAGIC:
        return "the header of an .hdr/.img pair (save it as a single .nii file)"
    return f"bytes {raw[:8].hex(' ')}"


def _nifti_class(raw: bytes, source: str):
    import nibabel as nib

    if len(raw) >= 12:
        for order in ("<", ">"):
            size = int(np.frombuffer(raw[:4], dtype=order + "i4")[0])
            if size == 348 and raw[344:348] == NIFTI1_SINGLE_MAGIC:
                return nib.Nifti1Image, 1
            if size == 540 and raw[4:12] == NIFTI2_SINGLE_MAGIC:
                if len(raw) < 540:  # found by the fuzzer: nibabel raised WrapStructError on these
                    raise InputError(
                        f"the file is truncated inside its NIfTI-2 header ({len(raw)} of 540 bytes). Upload the complete file.",
                        source=source,
                        field="header",
                    )
                return nib.Nifti2Image, 2
    raise InputError(
        f"not a NIfTI file: expected the magic bytes 'n+1' (NIfTI-1, at byte 344) or 'n+2' (NIfTI-2, at byte 4), "
        f"found {_describe_magic(raw)}.",
        source=source,
        field="magic",
    )


def _check_dims(shape: tuple, dims: str, source: str) -> tuple:
    """The image shape to load, or InputError when it is not the dimensionality needed."""
    if len(shape) < 3 or any(s < 1 for s in shape):
        raise InputError(f"expected a 3-D image (x, y, z), found shape {shape}.", source=source, field="dim")
    extra = [s for s in shape[4:] if s != 1]
    if extra:
        raise InputError(f"expected at most 4 dimensions, found shape {shape}.", source=source, field="dim")
    n_vol = shape[3] if len(shape) > 3 else 1
    if dims == "3d" and n_vol > 1:
        raise InputError(
            f"expected a 3-D image (one volume), found a 4-D series of {n_vol} volumes, shape {shape}; "
            "upload a single volume (e.g. the FA map, not the diffusion series).",
            source=source,
            field="dim",
        )
    if dims == "4d" and len(shape) < 4:
        raise InputError(
            f"expected a 4-D diffusion series (x, y, z, volumes), found a 3-D image of shape {shape}; "
            "upload the whole diffusion-weighted series, not a single volume or a map.",
            source=source,
            field="dim",
        )
    if dims == "4d" and n_vol < 2:
        raise InputError(f"expected a 4-D diffusion series, found a single volume, shape {shape}.", source=source, field="dim")
    return shape


def read_nifti(source, name: str | None = None, *, dims: str = "3d", limits: UploadLimits = DEFAULT_LIMITS) -> Volume:
    """Read and check a NIfTI-1 or NIfTI-2 image (``.nii`` or ``.nii.gz``).

    Parameters
    ----------
    source : path, bytes or binary file object.
    name : file name for messages (default: from ``source``).
    dims : ``"3d"`` (one volume; a 4-D file with a single volume is accepted), ``"4d"`` (a series
        of at least 2 volumes) or ``"any"``.
    limits : upload and decompression caps.

    Returns
    -------
    Volume

    Raises
    ------
    InputError
        Over the size caps, truncated or corrupt gzip, wrong magic bytes, a header nibabel cannot
        parse, the wrong number of dimensions, fewer voxel bytes than the header promises, an
        unsupported data type, a singular or non-finite affine, implausible voxel sizes, or NaN /
        infinite voxels. A ``.nii.gz`` is decompressed header first: a wrong header is refused
        after its first bytes, and a stream that goes on past the size the header declares (or
        whose header declares more than 100x its compressed size, past 256 MiB) is refused as a
        decompression bomb without decompressing the rest.
    """
    label, raw = read_source(source, name, limits)
    return nifti_from_bytes(label, raw, dims=dims, budget=Budget(limits))


def nifti_from_bytes(label: str, raw, *, dims: str = "3d", budget: Budget | None = None) -> Volume:
    """:func:`read_nifti` on bytes already in memory (the multi-patient reader's entry point).

    ``raw`` may also be the :class:`~core.io.safety.DeclaredBytes` of a zip entry read header first
    with :func:`nifti_declared_size`.
    """
    if dims not in ("3d", "4d", "any"):
        raise InputError(f"expected dims '3d', '4d' or 'any', found {dims!r}.", field="dims")
    budget = budget or Budget(DEFAULT_LIMITS)
    if isinstance(raw, DeclaredBytes):
        buffer = raw.data
    elif label.lower().endswith(".gz") or is_gzip(raw[:2]):
        # Header first: the header is judged after its first bytes are decompressed, and the rest
        # is decompressed into one buffer of exactly the size it declares.
        stream = GzipStream(raw, label)
        buffer = read_declared(stream.read, label, lambda head: nifti_declared_size(head, label, dims), budget=budget, compressed_bytes=len(raw)).data
    else:
        buffer = np.frombuffer(raw, np.uint8)
    return _nifti_from_buffer(label, buffer, dims)


_QUIET_LOG = logging.getLogger("core.io.volumes.nibabel_header_fixes")
_QUIET_LOG.addHandler(logging.NullHandler())
_QUIET_LOG.propagate = False


def _parse_header(head: bytes, label: str, dims: str):
    """(class, version, header, shape, dtype, offset, bytes the file must hold) from a NIfTI header."""
    from nibabel import imageglobals
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError
    from nibabel.wrapstruct import WrapStructError

    klass, version = _nifti_class(head, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = klass.header_class.from_fileobj(io.BytesIO(head), check=False)
            # The fixes nibabel makes to a header go to a silent logger, not to the server's log.
            header.check_fix(logger=_QUIET_LOG, error_level=imageglobals.error_level)
            shape = tuple(int(s) for s in header.get_data_shape())
            dtype = header.get_data_dtype()
            offset = int(header.get_data_offset())
    except (HeaderDataError, ImageFileError, WrapStructError, ValueError, TypeError, OverflowError, EOFError, KeyError, IndexError, struct.error) as exc:
        raise InputError(f"the NIfTI header cannot be read: {exc}.", source=label, field="header") from exc
    _check_dims(shape, dims, label)
    if dtype.kind not in "iuf" or dtype.fields is not None:
        raise InputError(
            f"expected real-valued voxels (integer or floating point), found data type {dtype} "
            "(complex or RGB images are not supported).",
            source=label,
            field="datatype",
        )
    n_voxels = math.prod(shape)  # Python ints: dims of 32767^7 (NIfTI-1) or 2^63 (NIfTI-2) must not wrap
    if n_voxels > MAX_VOXELS:
        raise InputError(
            f"the image has {n_voxels} voxels (shape {shape}); at most {MAX_VOXELS} are accepted.", source=label, field="dim"
        )
    if offset < 0 or offset > MAX_HEADER_BYTES:
        raise InputError(
            f"the header puts the voxel data at byte {offset}; expected at most {MAX_HEADER_BYTES} (the end of the header and its extensions).",
            source=label,
            field="vox_offset",
        )
    return klass, version, header, shape, dtype, offset, offset + n_voxels * dtype.itemsize


def nifti_declared_size(head: bytes, label: str, dims: str = "any") -> int:
    """The exact size in bytes a NIfTI file must have, from its first bytes (its header):
    ``vox_offset + prod(dim) x bytes per voxel``; InputError for a header that is wrong or
    declares an image past the caps (naming the field: magic, dim, datatype, vox_offset)."""
    return _parse_header(head, label, dims)[-1]


def _nifti_from_buffer(label: str, buffer: np.ndarray, dims: str) -> Volume:
    import nibabel as nib
    from nibabel.spatialimages import HeaderDataError

    klass, version, header, shape, dtype, offset, need = _parse_header(buffer[:PROBE_BYTES].tobytes(), label, dims)
    if need > len(buffer):
        raise InputError(
            f"the file is truncated: its header promises {need - offset} bytes of voxel data "
            f"from byte {offset}, but the file holds {len(buffer)} bytes. Upload the complete file.",
            source=label,
            field="vox_offset",
        )
    if offset > PROBE_BYTES:  # extensions longer than the probe: parse the whole header
        header = _parse_header(buffer[:offset].tobytes(), label, dims)[2]
    n_voxels = math.prod(shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            affine = np.asarray(header.get_best_affine(), dtype=float)
            slope, inter = header.get_slope_inter()
            sform_code = int(header["sform_code"])
            qform_code = int(header["qform_code"])
    except (HeaderDataError, ValueError, TypeError, OverflowError, ArithmeticError, np.linalg.LinAlgError) as exc:
        raise InputError(f"the NIfTI header's orientation or scaling cannot be read: {exc}.", source=label, field="header") from exc
    # The voxels are read in place from the one buffer (no second copy of the file), then scaled.
    voxels = np.frombuffer(buffer, dtype=dtype, count=n_voxels, offset=offset).reshape(shape, order="F")
    with np.errstate(all="ignore"):
        data = voxels.astype(np.float32)
        if slope is not None and (slope != 1 or (inter or 0) != 0):
            data *= np.float32(slope)
            data += np.float32(inter or 0.0)
    del voxels
    data = data.reshape(shape[:4] if len(shape) > 3 and dims != "3d" else shape[:3], order="F")

    report = []
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(
            f"the voxel-to-world affine (sform/qform) is singular or not finite: {np.round(affine, 3).tolist()}.",
            source=label,
            field="sform",
        )
    voxel_mm = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if voxel_mm.min() < VOXEL_MM_RANGE[0] or voxel_mm.max() > VOXEL_MM_RANGE[1]:
        raise InputError(
            f"voxel sizes of {np.round(voxel_mm, 3).tolist()} mm are implausible; expected "
            f"{VOXEL_MM_RANGE[0]}-{VOXEL_MM_RANGE[1]} mm. The header (pixdim / sform) is damaged.",
            source=label,
            field="pixdim",
        )
    n_bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if n_bad:
        raise InputError(
            f"found {n_bad} NaN or infinite voxels out of {data.size}; expected finite values. "
            "Set voxels outside the brain to 0 before uploading.",
            source=label,
            field="voxels",
        )

    orientation = "".join(nib.aff2axcodes(affine))
    code = sform_code if sform_code > 0 else qform_code
    space = XFORM_CODES.get(code, "unknown")
    if code == 0:
        report.append(ReportEntry.warning(label, "the header sets no orientation (sform and qform codes are 0); the voxel axes are taken as RAS.", field="sform_code"))
    if voxel_mm.max() / voxel_mm.min() > ANISOTROPY_WARNING:
        report.append(ReportEntry.warning(label, f"very anisotropic voxels {np.round(voxel_mm, 2).tolist()} mm; tract features will be coarse.", field="pixdim"))
    obliquity = np.degrees(np.max(np.abs(nib.affines.obliquity(affine))))
    if obliquity > OBLIQUITY_WARNING_DEG:
        report.append(ReportEntry.warning(label, f"oblique acquisition ({obliquity:.1f} degrees off the axes); resampling accounts for it.", field="sform"))
    shape_text = " x ".join(str(s) for s in data.shape)
    report.insert(
        0,
        ReportEntry.ok(
            label,
            f"NIfTI-{version}, {shape_text} voxels of {' x '.join(f'{v:.3g}' for v in voxel_mm)} mm, "
            f"orientation {orientation}, space {space}, stored as {dtype.name}.",
        ),
    )
    return Volume(data, affine, label, version, space, orientation, tuple(float(v) for v in voxel_mm), report)


# ---------------------------------------------------------------- onto the MNI grid


def _affine_map(transform, data, moving_affine, grid_affine, grid_shape, interpolation="linear") -> np.ndarray:
    from dipy.align.imaffine import AffineMap

    mapping = AffineMap(
        transform,
        domain_grid_shape=grid_shape,
        domain_grid2world=grid_affine,
        codomain_grid_shape=data.shape,
        codomain_grid2world=moving_affine,
    )
    return np.asarray(mapping.transform(np.asarray(data, dtype=np.float64), interpolation=interpolation), dtype=np.float32)


def coverage_of_brain(volume_shape, volume_affine, anatomy: Anatomy, transform=None) -> float:
    """Fraction of the MNI brain-mask voxels that fall inside an image's field of view.

    ``transform`` (MNI mm -> image world mm) is the identity for images in MNI space.
    """
    brain = _brain_points_mm(anatomy)
    points = brain if transform is None else brain @ transform[:3, :3].T + transform[:3, 3]
    inv = np.linalg.inv(volume_affine)
    ijk = points @ inv[:3, :3].T + inv[:3, 3]
    inside = np.all((ijk > -0.5) & (ijk < np.asarray(volume_shape[:3]) - 0.5), axis=1)
    return float(inside.mean())


@lru_cache(maxsize=2)
def _brain_points_mm_cached(key) -> np.ndarray:
    anatomy = load_anatomy()
    flat = np.flatnonzero(anatomy.brain_mask.ravel())[::7]  # every 7th voxel: ample for a fraction
    return anatomy.voxel_mm(flat)


def _brain_points_mm(anatomy: Anatomy) -> np.ndarray:
    if anatomy is load_anatomy():
        return _brain_points_mm_cached("default")
    flat = np.flatnonzero(anatomy.brain_mask.ravel())[::7]
    return anatomy.voxel_mm(flat)


def _on_grid(volume: Volume, anatomy: Anatomy) -> bool:
    return volume.data.shape == anatomy.shape and np.allclose(volume.affine, anatomy.affine, atol=1e-3)


def _known_mni_grid(volume: Volume) -> bool:
    size = np.asarray(volume.voxel_size_mm)
    for step, shapes in KNOWN_MNI_SHAPES.items():
        if np.allclose(size, step, rtol=0.01) and tuple(volume.data.shape[:3]) in shapes:
            return True
    return False


def to_mni(volume: Volume, *, space: str = "auto", interpolation: str = "linear", anatomy: Anatomy | None = None) -> MNIVolume:
    """Bring a 3-D volume onto the MNI152 2 mm grid.

    Parameters
    ----------
    volume : a 3-D :class:`Volume` (from :func:`read_nifti`).
    space : ``"mni"`` (the image is in MNI space: resample), ``"native"`` (register it), or
        ``"auto"``: MNI when the header declares a standard space (code 3, 4 or 5) or the image
        lies on a known MNI grid, native otherwise.
    interpolation : ``"linear"``, ``"continuous"`` or ``"nearest"`` (masks and labels).
    anatomy : reference anatomy (default: the bundled MNI152 2 mm one).

    Returns
    -------
    MNIVolume
        ``needs_review`` is True when registration was used.

    Raises
    ------
    InputError
        Not 3-D, an MNI-space image covering less than half of the MNI brain, or a native image
        too small to register (field of view under 60 mm).
    """
    import nibabel as nib
    from nilearn.image import resample_img

    anatomy = anatomy or load_anatomy()
    if volume.data.ndim != 3:
        raise InputError(f"expected a 3-D image, found shape {volume.data.shape}.", source=volume.source, field="dim")
    if space not in ("auto", "mni", "native"):
        raise InputError(f"expected space 'auto', 'mni' or 'native', found {space!r}.", source=volume.source, field="space")
    if interpolation not in ("linear", "continuous", "nearest"):
        raise InputError(f"expected interpolation 'linear', 'continuous' or 'nearest', found {interpolation!r}.", field="interpolation")
    report = list(volume.report)
    if space == "auto":
        if volume.in_standard_space:
            space, why = "mni", f"its header declares {volume.space.upper()} space"
        elif _known_mni_grid(volume):
            space, why = "mni", f"it lies on a known MNI grid ({' x '.join(map(str, volume.data.shape))})"
        else:
            space, why = "native", f"its header declares {volume.space} space"
        report.append(ReportEntry.ok(volume.source, f"taken as {'MNI' if space == 'mni' else 'native'}-space because {why}.", field="space"))

    if space == "native":
        registration = register_to_mni(volume, anatomy=anatomy)
        coverage = coverage_of_brain(volume.data.shape, volume.affine, anatomy, registration.transform)
        doubt = " The images barely match: the result is probably wrong." if registration.similarity < POOR_SIMILARITY else ""
        report.append(
            ReportEntry.warning(
                volume.source,
                f"registered to the MNI152 template ({registration.kind}, similarity {registration.similarity:.3f}); "
                f"check the overlay before accepting it.{doubt}",
                field="registration",
            )
        )
        return MNIVolume(registration.registered, anatomy.affine.copy(), volume.source, "registered", coverage, registration, report)

    coverage = coverage_of_brain(volume.data.shape, volume.affine, anatomy)
    if coverage < COVERAGE_ERROR:
        raise InputError(
            f"the image covers only {100 * coverage:.0f}% of the MNI brain; expected an MNI-space image covering the "
            "whole brain. If it is in native space, upload it as native so that it is registered.",
            source=volume.source,
            field="space",
        )
    if coverage < COVERAGE_WARNING:
        report.append(ReportEntry.warning(volume.source, f"the image covers {100 * coverage:.0f}% of the MNI brain; voxels outside it read 0.", field="space"))
    if _on_grid(volume, anatomy):
        return MNIVolume(volume.data.astype(np.float32, copy=True), anatomy.affine.copy(), volume.source, "identity", coverage, None, report)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resampled = resample_img(
            nib.Nifti1Image(volume.data.astype(np.float32, copy=False), volume.affine),
            target_affine=anatomy.affine,
            target_shape=anatomy.shape,
            interpolation=interpolation,
            force_resample=True,
            copy_header=True,
        )
    data = np.asarray(resampled.get_fdata(dtype=np.float32))
    report.append(ReportEntry.ok(volume.source, f"resampled onto the MNI152 2 mm grid ({interpolation} interpolation).", field="space"))
    return MNIVolume(data, anatomy.affine.copy(), volume.source, "resampled", coverage, None, report)


@lru_cache(maxsize=1)
def _coarse_template() -> tuple[np.ndarray, np.ndarray]:
    """The MNI template on a 4 mm grid (what registration optimises against)."""
    anatomy = load_anatomy()
    return _coarse(anatomy.template, anatomy.affine)


def _coarse(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An image resampled onto a grid of REGISTRATION_STEP_MM voxels with the same axes."""
    import nibabel as nib
    from nilearn.image import resample_img

    voxel = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if voxel.min() >= REGISTRATION_STEP_MM * 0.9:
        return np.asarray(data, np.float32), affine
    target = affine.copy()
    target[:3, :3] = affine[:3, :3] / voxel * REGISTRATION_STEP_MM
    shape = np.maximum(np.ceil(np.asarray(data.shape[:3]) * voxel / REGISTRATION_STEP_MM).astype(int), 1)
    # Smooth before decimating, so the coarse image is not aliased.
    from scipy.ndimage import gaussian_filter

    sigma = np.maximum(REGISTRATION_STEP_MM / voxel / 2.355, 0.0)
    smooth = gaussian_filter(np.asarray(data, np.float32), sigma)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = resample_img(nib.Nifti1Image(smooth, affine), target_affine=target, target_shape=tuple(shape), interpolation="linear", force_resample=True, copy_header=True)
    return np.asarray(img.get_fdata(dtype=np.float32)), target


def normalised_mutual_information(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """(H(a) + H(b)) / H(a, b): 1 for unrelated images, 2 for identical ones."""
    hist, _, _ = np.histogram2d(a.ravel(), b.ravel(), bins=bins)
    p = hist / max(hist.sum(), 1)
    nz = p > 0
    h_joint = -np.sum(p[nz] * np.log(p[nz]))
    pa, pb = p.sum(1), p.sum(0)
    h_a = -np.sum(pa[pa > 0] * np.log(pa[pa > 0]))
    h_b = -np.sum(pb[pb > 0] * np.log(pb[pb > 0]))
    return float((h_a + h_b) / h_joint) if h_joint > 0 else 1.0


def register_to_mni(volume: Volume, *, kind: str = "affine", anatomy: Anatomy | None = None) -> Registration:
    """Register a native-space 3-D image to the MNI152 template (dipy, mutual information).

    Steps: centres of mass aligned; rigid (6 parameters); then, for ``kind="affine"``, affine
    (12 parameters). Both images are smoothed and resampled to 4 mm for the optimisation; the
    final transform is applied to the full-resolution image.

    Parameters
    ----------
    volume : 3-D :class:`Volume` covering the whole brain (a T1, b0 or FA image).
    kind : ``"rigid"`` or ``"affine"``.

    Returns
    -------
    Registration

    Raises
    ------
    InputError
        Not 3-D, a field of view under 60 mm along an axis, or a constant image.
    """
    import time

    anatomy = anatomy or load_anatomy()
    if kind not in ("rigid", "affine"):
        raise InputError(f"expected registration kind 'rigid' or 'affine', found {kind!r}.", field="kind")
    data = volume.data
    if data.ndim != 3:
        raise InputError(f"expected a 3-D image to register, found shape {data.shape}.", source=volume.source, field="dim")
    fov = np.asarray(data.shape) * np.asarray(volume.voxel_size_mm)
    if fov.min() < REGISTRATION_MIN_FOV_MM:
        raise InputError(
            f"the field of view is {np.round(fov).astype(int).tolist()} mm; registration to a whole-brain template "
            f"needs at least {REGISTRATION_MIN_FOV_MM:g} mm along every axis.",
            source=volume.source,
            field="dim",
        )
    if np.ptp(data) == 0:
        raise InputError("the image is constant; there is nothing to register.", source=volume.source, field="voxels")

    start = time.perf_counter()
    static, static_affine = _coarse_template() if anatomy is load_anatomy() else _coarse(anatomy.template, anatomy.affine)
    moving, moving_affine = _coarse(data, volume.affine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            current = _optimise(static, static_affine, moving, moving_affine, kind)
        except (ValueError, FloatingPointError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
            raise InputError(f"registration to the MNI template failed ({exc}); check that the image shows a whole head.", source=volume.source, field="registration") from exc
    if not np.all(np.isfinite(current)) or abs(np.linalg.det(current[:3, :3])) < 1e-3:
        raise InputError("registration to the MNI template diverged; check that the image shows a whole head.", source=volume.source, field="registration")
    registered = _affine_map(current, data, volume.affine, anatomy.affine, anatomy.shape)

    brain = anatomy.brain_mask
    similarity = normalised_mutual_information(anatomy.template[brain], registered[brain])
    return Registration(
        transform=current,
        registered=registered,
        template=anatomy.template,
        grid_affine=anatomy.affine.copy(),
        similarity=similarity,
        kind=kind,
        seconds=time.perf_counter() - start,
        moving_shape=tuple(data.shape),
        moving_affine=volume.affine.copy(),
    )


def _optimise(static, static_affine, moving, moving_affine, kind) -> np.ndarray:
    """Centres of mass, then rigid, then (for ``kind="affine"``) affine; the MNI -> native transform."""
    from dipy.align.imaffine import AffineRegistration, MutualInformationMetric, transform_centers_of_mass
    from dipy.align.transforms import AffineTransform3D, RigidTransform3D

    current = transform_centers_of_mass(static, static_affine, moving, moving_affine).affine
    steps = [("rigid", RigidTransform3D())] + ([("affine", AffineTransform3D())] if kind == "affine" else [])
    for step, transform in steps:
        optimiser = AffineRegistration(
            metric=MutualInformationMetric(nbins=32, sampling_proportion=REGISTRATION_SAMPLING),
            level_iters=REGISTRATION_ITERS[step],
            sigmas=[1.0, 0.0],
            factors=[2, 1],
            verbosity=0,
        )
        current = optimiser.optimize(
            static, moving, transform, None,
            static_grid2world=static_affine, moving_grid2world=moving_affine, starting_affine=current,
        ).affine
    return current


def load_volume_to_mni(source, name: str | None = None, *, space: str = "auto", limits: UploadLimits = DEFAULT_LIMITS) -> MNIVolume:
    """:func:`read_nifti` then :func:`to_mni`: a 3-D file to a viewer-ready array on the MNI grid."""
    return to_mni(read_nifti(source, name, dims="3d", limits=limits), space=space)
