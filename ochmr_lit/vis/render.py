"""Headless mesh rendering through OpenGL on EGL (moderngl), for synthetic data and prediction overlays.

Camera convention (OpenCV): the camera looks along +z, x points right and y down in the image; points
are in the camera frame in metres. Pixel coordinates ``(u, v)`` have ``(0, 0)`` at the *centre* of the
top-left pixel, so pixel ``(i, j)`` (column i, row j) covers ``[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]``
and a point projects to ``u = fx * x / z + s * y / z + cx``, ``v = fy * y / z + cy`` with the
intrinsics ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]``. A pixel belongs to a triangle when its centre
lies inside the projected triangle (OpenGL's rasterisation rule).

Shading is Lambert + ambient with a directional light (default: from the camera, along -z), lit on both
sides so the result does not depend on the faces' winding. Several meshes are composited with the depth
test; the linear camera-frame depth (metres, not NDC) and the index of the front mesh are read back per
pixel.

moderngl is used because it is maintained and has a headless EGL context; pyrender pins PyOpenGL 3.1.0
and uses ``np.infty`` (removed in numpy 2), so it does not run with this project's numpy.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = [
    "Mesh",
    "MeshRenderer",
    "RenderResult",
    "RendererUnavailableError",
    "get_context",
    "projection_matrix",
    "vertex_normals",
]

#: Near and far clipping planes in metres.
Z_NEAR = 0.05
Z_FAR = 1000.0

_VERTEX_SHADER = """
#version 330
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in float in_id;
out vec3 v_normal;
out vec3 v_color;
out float v_z;
flat out float v_id;
void main() {
    gl_Position = proj * vec4(in_pos, 1.0);
    v_normal = in_normal;
    v_color = in_color;
    v_z = in_pos.z;
    v_id = in_id;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 light_dir;
uniform float ambient;
uniform float diffuse;
in vec3 v_normal;
in vec3 v_color;
in float v_z;
flat in float v_id;
layout(location = 0) out vec4 out_color;
layout(location = 1) out vec2 out_depth_id;
void main() {
    float len = length(v_normal);
    float lambert = len > 0.0 ? abs(dot(v_normal / len, light_dir)) : 1.0;
    vec3 rgb = v_color * (ambient + diffuse * lambert);
    out_color = vec4(clamp(rgb, 0.0, 1.0), 1.0);
    out_depth_id = vec2(v_z, v_id);
}
"""

# Amodal silhouettes: every mesh writes a one-hot value into its own channel (8 channels over two RGBA8
# targets) with MAX blending and no depth test, so one pass gives up to 8 independent silhouettes.
_SILHOUETTE_VERTEX_SHADER = """
#version 330
uniform mat4 proj;
in vec3 in_pos;
in float in_id;
flat out int v_slot;
void main() {
    gl_Position = proj * vec4(in_pos, 1.0);
    v_slot = int(in_id + 0.5) - 1;
}
"""

_SILHOUETTE_FRAGMENT_SHADER = """
#version 330
uniform int slot_base;
flat in int v_slot;
layout(location = 0) out vec4 out_a;
layout(location = 1) out vec4 out_b;
void main() {
    int k = v_slot - slot_base;
    vec4 a = vec4(0.0);
    vec4 b = vec4(0.0);
    if (k >= 0 && k < 4) { a[k] = 1.0; }
    else if (k >= 4 && k < 8) { b[k - 4] = 1.0; }
    out_a = a;
    out_b = b;
}
"""

_SILHOUETTES_PER_PASS = 8


class RendererUnavailableError(RuntimeError):
    """No headless OpenGL (EGL) context could be created."""


@dataclass
class Mesh:
    """A triangle mesh in the camera frame.

    Attributes:
        vertices: (V, 3) camera-frame metres (OpenCV axes: x right, y down, z forward).
        faces: (F, 3) vertex indices.
        color: (3,) RGB in [0, 1] for the whole mesh, or (V, 3) per-vertex RGB.
        alpha: opacity in [0, 1] used when compositing over the background (1 = opaque).
        normals: optional (V, 3) vertex normals; computed from the faces when None.
    """

    vertices: np.ndarray
    faces: np.ndarray
    color: np.ndarray | Sequence[float] = (0.7, 0.7, 0.7)
    alpha: float = 1.0
    normals: np.ndarray | None = None


@dataclass
class RenderResult:
    """What one render returns.

    Attributes:
        image: (H, W, 3) uint8 RGB, meshes composited over the background.
        depth: (H, W) float32 camera-frame z of the front surface in metres, ``inf`` where no mesh.
        instance: (H, W) int16 index (into the ``meshes`` argument) of the front mesh, -1 where none.
        silhouettes: (N, H, W) bool amodal silhouettes (each mesh alone) when asked for, else None.
    """

    image: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    silhouettes: np.ndarray | None = None


_CONTEXT = None
_CONTEXT_PID: int | None = None


def get_context():
    """The process's headless moderngl context (EGL), created on first use.

    A forked child gets a context of its own (contexts do not survive ``fork``).

    Raises:
        RendererUnavailableError: EGL is missing or cannot create an OpenGL 3.3 context.
    """
    global _CONTEXT, _CONTEXT_PID
    if _CONTEXT is not None and _CONTEXT_PID == os.getpid():
        return _CONTEXT
    import moderngl

    try:
        ctx = moderngl.create_standalone_context(backend="egl", require=330)
    except Exception as exc:  # moderngl/glcontext raise plain Exceptions with the EGL error text
        raise RendererUnavailableError(
            f"headless OpenGL through EGL is not available ({exc}). Install Mesa's EGL and software "
            "rasteriser (Debian/Ubuntu: `apt-get install libegl1 libgl1-mesa-dri`) or a GPU driver that "
            "provides libEGL, and on a machine without a display leave EGL_PLATFORM unset or set it to "
            "'surfaceless'."
        ) from exc
    _CONTEXT, _CONTEXT_PID = ctx, os.getpid()
    return ctx


def projection_matrix(K: np.ndarray, width: int, height: int, near: float = Z_NEAR, far: float = Z_FAR) -> np.ndarray:
    """OpenGL clip-space matrix for OpenCV intrinsics, with image row 0 at window row 0.

    ``x_ndc = 2 (u + 0.5) / W - 1`` and ``y_ndc = 2 (v + 0.5) / H - 1``, so the framebuffer read back
    row by row is the image top to bottom without a flip (the winding of faces flips, which does not
    matter because faces are not culled).

    Args:
        K: (3, 3) intrinsics in pixels.
        width, height: image size in pixels.
        near, far: clipping distances in metres.
    Returns:
        (4, 4) float64 row-major matrix mapping camera-frame points ``(x, y, z, 1)`` to clip space.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"intrinsics K must be (3, 3), got {K.shape}")
    fx, s, cx = K[0]
    fy, cy = K[1, 1], K[1, 2]
    return np.array(
        [
            [2.0 * fx / width, 2.0 * s / width, (2.0 * cx + 1.0) / width - 1.0, 0.0],
            [0.0, 2.0 * fy / height, (2.0 * cy + 1.0) / height - 1.0, 0.0],
            [0.0, 0.0, (far + near) / (far - near), -2.0 * far * near / (far - near)],
            [0.0, 0.0, 1.0, 0.0],
        ]
    )


_INCIDENCE_CACHE: dict[tuple[int, int, bytes], sp.csr_matrix] = {}


def _incidence(faces: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """(V, F) sparse matrix with a 1 where vertex v belongs to face f (cached per face array)."""
    key = (num_vertices, len(faces), hashlib.blake2b(faces.tobytes(), digest_size=16).digest())
    matrix = _INCIDENCE_CACHE.get(key)
    if matrix is None:
        rows = faces.reshape(-1)
        cols = np.repeat(np.arange(len(faces)), 3)
        matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(num_vertices, len(faces)))
        if len(_INCIDENCE_CACHE) >= 8:
            _INCIDENCE_CACHE.clear()
        _INCIDENCE_CACHE[key] = matrix
    return matrix


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, batched over leading dimensions.

    Args:
        vertices: (..., V, 3) float.
        faces: (F, 3) int, shared by the batch.
    Returns:
        (..., V, 3) float32; zero for vertices that belong to no face.
    """
    v = np.asarray(vertices, dtype=np.float32)
    lead, n_vert = v.shape[:-2], v.shape[-2]
    v = v.reshape(-1, n_vert, 3)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    face_n = np.cross(v[:, f[:, 1]] - v[:, f[:, 0]], v[:, f[:, 2]] - v[:, f[:, 0]])  # (B, F, 3), 2 x area
    # Scatter-add of face normals onto their vertices as one sparse product (V, F) @ (F, 3B): several
    # times faster than np.add.at or per-batch np.bincount for SMPL-sized meshes.
    summed = _incidence(f, n_vert) @ face_n.transpose(1, 0, 2).reshape(len(f), -1)
    normals = summed.reshape(n_vert, -1, 3).transpose(1, 0, 2)
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    return (normals / np.maximum(norm, 1e-12)).astype(np.float32).reshape(*lead, n_vert, 3)


def _check_mesh(mesh: Mesh, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vertices = np.asarray(mesh.vertices, dtype=np.float32)
    faces = np.asarray(mesh.faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"meshes[{index}].vertices must be (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"meshes[{index}].faces must be (F, 3), got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"meshes[{index}].faces index outside [0, {len(vertices)})")
    color = np.asarray(mesh.color, dtype=np.float32)
    if color.shape == (3,):
        color = np.broadcast_to(color, vertices.shape)
    elif color.shape != vertices.shape:
        raise ValueError(f"meshes[{index}].color must be (3,) or (V, 3) = {vertices.shape}, got {color.shape}")
    return vertices, faces.astype(np.int32), color


class MeshRenderer:
    """Renders triangle meshes into an RGB image, a linear depth map and an instance map.

    One renderer owns framebuffers of one size and reuses the process's EGL context (created lazily on
    the first render, so constructing a renderer is cheap and safe before ``fork``).

    Args:
        width, height: image size in pixels.
    """

    def __init__(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got width={width}, height={height}")
        self.width = int(width)
        self.height = int(height)
        self._gl = None  # resources created on first render
        self._pid: int | None = None

    # -- GL resources --------------------------------------------------------------------------
    def _resources(self) -> dict:
        if self._gl is not None and self._pid == os.getpid():
            return self._gl
        ctx = get_context()
        size = (self.width, self.height)
        color = ctx.texture(size, 4, dtype="f1")
        depth_id = ctx.texture(size, 2, dtype="f4")
        depth_rb = ctx.depth_renderbuffer(size)
        sil_a = ctx.texture(size, 4, dtype="f1")
        sil_b = ctx.texture(size, 4, dtype="f1")
        self._gl = {
            "ctx": ctx,
            "fbo": ctx.framebuffer([color, depth_id], depth_rb),
            "sil_fbo": ctx.framebuffer([sil_a, sil_b]),
            "prog": ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER),
            "sil_prog": ctx.program(
                vertex_shader=_SILHOUETTE_VERTEX_SHADER, fragment_shader=_SILHOUETTE_FRAGMENT_SHADER
            ),
            "vbo": None,
            "ibo": None,
            "vao": None,
            "sil_vao": None,
            "attachments": [color, depth_id, depth_rb, sil_a, sil_b],
        }
        self._pid = os.getpid()
        return self._gl

    def _upload(self, meshes: Sequence[Mesh]) -> list[tuple[int, int]]:
        """Packs all meshes into one vertex/index buffer; returns each mesh's (first index, count)."""
        gl = self._resources()
        ctx = gl["ctx"]
        blocks, index_blocks, ranges = [], [], []
        offset = 0
        first = 0
        for i, mesh in enumerate(meshes):
            vertices, faces, color = _check_mesh(mesh, i)
            if mesh.normals is None:
                normals = vertex_normals(vertices, faces)
            else:
                normals = np.asarray(mesh.normals, dtype=np.float32)
                if normals.shape != vertices.shape:
                    raise ValueError(f"meshes[{i}].normals must be {vertices.shape}, got {normals.shape}")
            ids = np.full((len(vertices), 1), i + 1, dtype=np.float32)
            blocks.append(np.concatenate([vertices, normals, color, ids], axis=1))
            index_blocks.append(faces.reshape(-1) + offset)
            ranges.append((first, faces.size))
            offset += len(vertices)
            first += faces.size
        data = np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
        indices = np.ascontiguousarray(np.concatenate(index_blocks), dtype=np.int32)
        if gl["vbo"] is None or gl["vbo"].size < data.nbytes or gl["ibo"].size < indices.nbytes:
            for key in ("vao", "sil_vao", "vbo", "ibo"):
                if gl[key] is not None:
                    gl[key].release()
            gl["vbo"] = ctx.buffer(reserve=max(data.nbytes, 1))
            gl["ibo"] = ctx.buffer(reserve=max(indices.nbytes, 1))
            gl["vao"] = ctx.vertex_array(
                gl["prog"],
                [(gl["vbo"], "3f 3f 3f 1f", "in_pos", "in_normal", "in_color", "in_id")],
                index_buffer=gl["ibo"],
                index_element_size=4,
            )
            gl["sil_vao"] = ctx.vertex_array(
                gl["sil_prog"],
                [(gl["vbo"], "3f 12x 12x 1f", "in_pos", "in_id")],
                index_buffer=gl["ibo"],
                index_element_size=4,
            )
        gl["vbo"].write(data)
        gl["ibo"].write(indices)
        return ranges

    def _set_projection(self, prog, K: np.ndarray) -> None:
        proj = projection_matrix(K, self.width, self.height)
        # GLSL matrices are column-major: upload the transpose of the row-major matrix.
        prog["proj"].write(np.ascontiguousarray(proj.T, dtype=np.float32).tobytes())

    # -- public API ----------------------------------------------------------------------------
    def render(
        self,
        meshes: Sequence[Mesh],
        K: np.ndarray,
        background: np.ndarray | None = None,
        light_dir: Sequence[float] = (0.0, 0.0, -1.0),
        ambient: float = 0.35,
        diffuse: float = 0.65,
        silhouettes: bool = False,
    ) -> RenderResult:
        """Renders meshes with depth-correct compositing.

        Args:
            meshes: meshes in the camera frame (metres); ``instance`` values index this sequence.
            K: (3, 3) intrinsics in pixels (OpenCV convention, see the module docstring).
            background: (H, W, 3) uint8 RGB image behind the meshes; black when None.
            light_dir: direction *towards* the light in the camera frame (normalised here); the default
                is a light at the camera.
            ambient, diffuse: shading ``color * (ambient + diffuse * |n . l|)``, clipped to [0, 1].
            silhouettes: also return each mesh's amodal silhouette (see :meth:`silhouettes`), reusing
                this render's uploaded geometry.
        Returns:
            :class:`RenderResult` with ``image`` (H, W, 3) uint8, ``depth`` (H, W) float32 metres
            (``inf`` where empty), ``instance`` (H, W) int16 (-1 where empty) and ``silhouettes``.
        """
        h, w = self.height, self.width
        if background is not None:
            background = np.asarray(background)
            if background.shape != (h, w, 3) or background.dtype != np.uint8:
                raise ValueError(
                    f"background must be a ({h}, {w}, 3) uint8 image, got {background.shape} {background.dtype}"
                )
        if len(meshes) == 0:
            image = background.copy() if background is not None else np.zeros((h, w, 3), np.uint8)
            return RenderResult(
                image,
                np.full((h, w), np.inf, np.float32),
                np.full((h, w), -1, np.int16),
                np.zeros((0, h, w), bool) if silhouettes else None,
            )
        gl = self._resources()
        ctx = gl["ctx"]
        ranges = self._upload(meshes)
        prog = gl["prog"]
        self._set_projection(prog, K)
        light = np.asarray(light_dir, dtype=np.float64)
        prog["light_dir"].value = tuple(float(x) for x in light / max(np.linalg.norm(light), 1e-12))
        prog["ambient"].value = float(ambient)
        prog["diffuse"].value = float(diffuse)

        fbo = gl["fbo"]
        fbo.use()
        ctx.viewport = (0, 0, w, h)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.disable(ctx.BLEND | ctx.CULL_FACE)
        ctx.enable(ctx.DEPTH_TEST)
        # The buffers may be larger than this scene (they are reused): draw only its indices.
        gl["vao"].render(ctx.TRIANGLES, vertices=ranges[-1][0] + ranges[-1][1])

        rgb = np.frombuffer(fbo.read(components=3, attachment=0), np.uint8).reshape(h, w, 3)
        depth_id = np.frombuffer(fbo.read(components=2, attachment=1, dtype="f4"), np.float32).reshape(h, w, 2)
        instance = np.rint(depth_id[..., 1]).astype(np.int16) - 1
        empty = instance < 0
        depth = np.where(empty, np.float32(np.inf), depth_id[..., 0]).astype(np.float32)

        alphas = np.array([float(m.alpha) for m in meshes], dtype=np.float32)
        if background is None and np.all(alphas >= 1.0):
            image = rgb.copy()
        else:
            bg = background if background is not None else np.zeros((h, w, 3), np.uint8)
            if np.all(alphas >= 1.0):
                image = np.where(empty[..., None], bg, rgb)
            else:
                a = np.where(empty, 0.0, alphas[np.maximum(instance, 0)])[..., None]
                image = np.rint(a * rgb + (1.0 - a) * bg).astype(np.uint8)
        sil = self._silhouette_passes(ranges, K) if silhouettes else None
        return RenderResult(image=image, depth=depth, instance=instance, silhouettes=sil)

    def silhouettes(self, meshes: Sequence[Mesh], K: np.ndarray) -> np.ndarray:
        """Amodal silhouettes: the pixels each mesh covers on its own, ignoring the others.

        Args:
            meshes: meshes in the camera frame (metres).
            K: (3, 3) intrinsics in pixels.
        Returns:
            (N, H, W) bool, one mask per mesh (the same pixel rule as :meth:`render`).
        """
        if len(meshes) == 0:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return self._silhouette_passes(self._upload(meshes), K)

    def _silhouette_passes(self, ranges: list[tuple[int, int]], K: np.ndarray) -> np.ndarray:
        """Amodal silhouettes of the uploaded meshes, 8 per pass (see the silhouette shaders)."""
        h, w = self.height, self.width
        out = np.zeros((len(ranges), h, w), dtype=bool)
        gl = self._resources()
        ctx = gl["ctx"]
        prog = gl["sil_prog"]
        self._set_projection(prog, K)
        fbo = gl["sil_fbo"]
        fbo.use()
        ctx.viewport = (0, 0, w, h)
        ctx.disable(ctx.DEPTH_TEST | ctx.CULL_FACE)
        ctx.enable(ctx.BLEND)
        ctx.blend_equation = ctx.MAX
        ctx.blend_func = ctx.ONE, ctx.ONE
        try:
            for base in range(0, len(ranges), _SILHOUETTES_PER_PASS):
                group = ranges[base : base + _SILHOUETTES_PER_PASS]
                fbo.clear(0.0, 0.0, 0.0, 0.0)
                prog["slot_base"].value = base
                first = group[0][0]
                count = group[-1][0] + group[-1][1] - first
                gl["sil_vao"].render(ctx.TRIANGLES, vertices=count, first=first)
                for attachment in range((len(group) + 3) // 4):  # read the second target only if used
                    data = np.frombuffer(fbo.read(components=4, attachment=attachment), np.uint8)
                    data = data.reshape(h, w, 4)
                    for k in range(min(4, len(group) - 4 * attachment)):
                        out[base + 4 * attachment + k] = data[..., k] > 127
        finally:
            ctx.blend_equation = ctx.FUNC_ADD
            ctx.disable(ctx.BLEND)
        return out

    def release(self) -> None:
        """Frees this renderer's GL objects (the shared context stays)."""
        if self._gl is not None and self._pid == os.getpid():
            for key in ("vao", "sil_vao", "vbo", "ibo", "fbo", "sil_fbo", "prog", "sil_prog"):
                obj = self._gl.get(key)
                if obj is not None:
                    obj.release()
            for obj in self._gl["attachments"]:
                obj.release()
        self._gl = None
