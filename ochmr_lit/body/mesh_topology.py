"""Triangle and quad mesh operations used to build the synthetic body.

Hand-written (a few lines each) because the environment has no mesh-processing library (trimesh,
open3d, ...) and these operations must keep vertex ids reproducible.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def cell_boundary(
    occ: np.ndarray, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The boundary of a union of grid cells as a quad mesh: ``(vertices (V, 3), quads (Q, 4))``.

    ``occ (nx, ny, nz)`` marks occupied cells of the grid with lines ``xs, ys, zs``; quads are
    counter-clockwise seen from outside. The union must be a manifold (no two cells touching only
    along an edge or at a corner).
    """
    padded = np.pad(occ, 1)
    nodes = np.array(np.meshgrid(xs, ys, zs, indexing="ij")).reshape(3, -1).T
    dims = (len(xs), len(ys), len(zs))
    quads = []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        lo = np.take(padded, range(0, padded.shape[axis] - 1), axis=axis)
        hi = np.take(padded, range(1, padded.shape[axis]), axis=axis)
        for sign, mask in ((+1, lo & ~hi), (-1, hi & ~lo)):
            cells = np.argwhere(mask[tuple(slice(1, -1) if a != axis else slice(None) for a in range(3))])
            for cell in cells:  # a few hundred faces at most
                base = cell.copy()
                corners = []
                for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
                    c = base.copy()
                    c[u] += du
                    c[v] += dv
                    corners.append(np.ravel_multi_index(tuple(c), dims))
                # (u, v, axis) is right-handed for axis 0 and 2 and left-handed for axis 1
                outward = sign * (1 if axis != 1 else -1)
                quads.append(corners if outward > 0 else corners[::-1])
    quads = np.array(quads)
    used, inverse = np.unique(quads, return_inverse=True)
    return nodes[used], inverse.reshape(quads.shape)


def subdivide_quads(vertices: np.ndarray, quads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split every quad into four (edge midpoints and face centres); returns new ``(vertices, quads)``."""
    nv, nq = len(vertices), len(quads)
    directed = np.stack([quads, np.roll(quads, -1, axis=1)], axis=-1).reshape(-1, 2)
    edges, edge_of = np.unique(np.sort(directed, axis=1), axis=0, return_inverse=True)
    edge_of = edge_of.reshape(nq, 4)
    mid = nv + edge_of  # (Q, 4): midpoint of edge i -> i+1
    centre = nv + len(edges) + np.arange(nq)
    new_vertices = np.concatenate([vertices, vertices[edges].mean(1), vertices[quads].mean(1)])
    new_quads = np.stack(
        [np.stack([quads[:, i], mid[:, i], centre, mid[:, (i - 1) % 4]], axis=1) for i in range(4)], axis=1
    ).reshape(-1, 4)
    return new_vertices, new_quads


def quads_to_triangles(quads: np.ndarray) -> np.ndarray:
    """Two counter-clockwise triangles per quad (diagonal 0-2)."""
    return np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]], axis=1).reshape(-1, 3)


def mesh_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges ``(E, 2)`` and, per face corner, the id of edge (corner -> next)."""
    directed = np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2)
    edges, edge_of = np.unique(np.sort(directed, axis=1), axis=0, return_inverse=True)
    return edges, edge_of.reshape(faces.shape)


def choose_splits(vertices: np.ndarray, faces: np.ndarray, count: int) -> np.ndarray:
    """``(count, 2)`` longest edges, no two in the same triangle (so the splits are independent)."""
    edges, edge_of = mesh_edges(faces)
    length = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    faces_of_edge = [[] for _ in range(len(edges))]
    for f, row in enumerate(edge_of):
        for e in row:
            faces_of_edge[e].append(f)
    used = np.zeros(len(faces), dtype=bool)
    chosen = []
    for e in np.argsort(-length, kind="stable"):
        fs = faces_of_edge[e]
        if not used[fs].any():
            used[fs] = True
            chosen.append(e)
            if len(chosen) == count:
                return edges[chosen]
    raise ValueError(f"only {len(chosen)} independent edges to split, {count} needed")


def split_edges(vertices: np.ndarray, faces: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split each edge (a, b) at its midpoint m: triangles (a, b, c) become (a, m, c) and (m, b, c)."""
    new_ids = len(vertices) + np.arange(len(edges))
    lookup = {(int(a), int(b)): int(m) for (a, b), m in zip(np.sort(edges, axis=1), new_ids, strict=True)}
    out = []
    for tri in faces.tolist():
        for i in range(3):
            a, b, c = tri[i], tri[(i + 1) % 3], tri[(i + 2) % 3]
            m = lookup.get((min(a, b), max(a, b)))
            if m is not None:
                out += [[a, m, c], [m, b, c]]
                break
        else:
            out.append(tri)
    midpoints = vertices[edges].mean(1)
    return np.concatenate([vertices, midpoints]), np.array(out, dtype=np.int64)


def neighbour_mean_operator(
    edges: np.ndarray, num_vertices: int, include_self: bool = False
) -> sp.csr_matrix:
    """``(V, V)`` sparse matrix ``M`` with ``M @ x`` the mean of each vertex's neighbours along ``edges``.

    ``include_self`` counts the vertex itself among its neighbours.
    """
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    if include_self:
        rows = np.concatenate([rows, np.arange(num_vertices)])
        cols = np.concatenate([cols, np.arange(num_vertices)])
    adjacency = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_vertices, num_vertices))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / degree) @ adjacency)
