"""One SynthCrowd image: a sampled scene posed with the body model, rendered headless and annotated.

:class:`SynthCrowdGenerator` runs one batched body-model forward and one render (with the amodal
silhouette pass) per scene; image ``i`` of a split with seed ``s`` draws everything from
``np.random.default_rng(np.random.SeedSequence([s, i]))`` (:func:`image_rng`), so it depends on
``(s, i)`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ochmr_lit.body import FACE_VERTEX_IDS, BodyModel, resolve_body_model_dir
from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.data.centermaps import body_centers
from ochmr_lit.data.synthcrowd.annotate import (
    amodal_boxes,
    coco_visibility,
    depth_tolerances,
    encode_masks,
    keypoint_visibility,
    occlusion_ratios,
    project,
    rle_boxes_areas,
)
from ochmr_lit.data.synthcrowd.scene import (
    Appearance,
    SceneParams,
    global_orientation,
    load_user_poses,
    rot_x,
    sample_scene,
)
from ochmr_lit.geometry import (
    axis_angle_to_rotmat,
    box_to_center_size,
    rotmat_to_axis_angle,
    size_to_spin_scale,
)
from ochmr_lit.vis.render import Mesh, MeshRenderer, RenderResult, vertex_normals

#: A person is annotated (and kept in the scene) only with at least this many visible pixels and a
#: visible box at least MIN_BOX_SIDE_PX on each side; others are removed and the scene re-rendered.
MIN_VISIBLE_PIXELS = 48
MIN_BOX_SIDE_PX = 4

# Body parts by SMPL joint index (a vertex belongs to the joint with its largest skinning weight).
_TORSO = (0, 3, 6, 9, 13, 14)
_UPPER_ARMS = (16, 17)
_FOREARMS = (18, 19)
_HANDS = (20, 21, 22, 23)
_THIGHS = (1, 2)
_SHINS = (4, 5)
_FEET = (7, 8, 10, 11)
_NECK_HEAD = (12, 15)
_PELVIS = (0,)


@dataclass(frozen=True)
class GeneratorConfig:
    """What a generated image depends on besides its seed and index.

    Attributes:
        image_size: (H, W) pixels.
        people: (min, max) people per scene.
        body_model_dir: body model folder; None = the synthetic model.
        poses_npz: optional ``.npz`` of SMPL poses (key ``poses`` (N, 72) or ``pose``).
        image_ext: ``jpg`` or ``png``.
    """

    image_size: tuple[int, int] = (256, 256)
    people: tuple[int, int] = (1, 6)
    body_model_dir: str | None = None
    poses_npz: str | None = None
    image_ext: str = "jpg"


@dataclass
class SceneResult:
    """One generated image with its people.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        K: (3, 3) intrinsics.
        people: per-person ground truth (numpy values, see :meth:`SynthCrowdGenerator.generate`).
        render: the final render (depth and instance buffers the visibility was read from).
        amodal: (N, H, W) bool silhouettes of each person alone.
        scene: the sampled parameters.
    """

    image: np.ndarray
    K: np.ndarray
    people: list[dict[str, Any]]
    render: RenderResult
    amodal: np.ndarray
    scene: SceneParams


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` of a split with seed ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def annotatable(instance: np.ndarray, n: int) -> np.ndarray:
    """(n,) bool: people with at least MIN_VISIBLE_PIXELS visible pixels and a visible box of at least
    MIN_BOX_SIDE_PX on each side, from the (H, W) instance buffer."""
    keep = np.zeros(n, dtype=bool)
    for i in range(n):
        mask = instance == i
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows) and mask.sum() >= MIN_VISIBLE_PIXELS:
            keep[i] = (rows[-1] - rows[0] + 1 >= MIN_BOX_SIDE_PX) and (cols[-1] - cols[0] + 1 >= MIN_BOX_SIDE_PX)
    return keep


class SynthCrowdGenerator:
    """Builds SynthCrowd images: one body-model forward and one render (+ one silhouette pass) per scene.

    Args:
        config: :class:`GeneratorConfig`.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        h, w = config.image_size
        self.model_dir = resolve_body_model_dir(config.body_model_dir)
        self.body = BodyModel(self.model_dir).eval()
        self.faces = self.body.faces.cpu().numpy().astype(np.int32)
        # Body part of each vertex: the joint with the largest skinning weight (smplx's lbs_weights).
        self.vertex_part = self.body.smpl["neutral"].lbs_weights.argmax(dim=1).cpu().numpy()
        self.user_poses = load_user_poses(config.poses_npz) if config.poses_npz else None
        self.renderer = MeshRenderer(w, h)
        self._regions = self._clothing_regions()
        self._conventions = ("coco17", "spin24", "openpose25")
        self._tolerance: np.ndarray | None = None

    def _clothing_regions(self) -> dict[str, np.ndarray]:
        """Vertex masks of skin/clothing regions from the skinning parts, and hair from the rest pose."""
        part = self.vertex_part
        with torch.no_grad():
            rest = self.body(torch.eye(3).expand(1, 24, 3, 3), torch.zeros(1, 10)).vertices[0].numpy()
        head = np.isin(part, _NECK_HEAD)
        _, left_eye, right_eye, left_ear, right_ear = FACE_VERTEX_IDS  # nose, eyes, ears
        eye_y = rest[[left_eye, right_eye], 1].mean()
        ear_z = rest[[left_ear, right_ear], 2].mean()
        hair = head & ((rest[:, 1] > eye_y + 0.035) | ((rest[:, 2] < ear_z) & (rest[:, 1] > eye_y - 0.04)))
        return {
            "torso": np.isin(part, _TORSO) & ~np.isin(part, _PELVIS),
            "pelvis": np.isin(part, _PELVIS),
            "upper_arms": np.isin(part, _UPPER_ARMS),
            "forearms": np.isin(part, _FOREARMS),
            "hands": np.isin(part, _HANDS),
            "thighs": np.isin(part, _THIGHS),
            "shins": np.isin(part, _SHINS),
            "feet": np.isin(part, _FEET),
            "head": head & ~hair,
            "hair": hair,
        }

    def vertex_colors(self, look: Appearance) -> np.ndarray:
        """(V, 3) float32 RGB of one person: skin, top, bottom, shoes and hair regions, times its shade."""
        r = self._regions
        colors = np.empty((len(self.vertex_part), 3), np.float32)
        colors[:] = look.skin
        colors[r["torso"] | r["upper_arms"]] = look.top
        if look.long_sleeves:
            colors[r["forearms"]] = look.top
        colors[r["pelvis"] | r["thighs"]] = look.bottom
        if look.long_trousers:
            colors[r["shins"]] = look.bottom
        colors[r["feet"]] = look.shoes
        colors[r["hair"]] = look.hair
        return np.clip(colors * look.shade, 0.0, 1.0)

    def _pose_people(self, scene: SceneParams) -> dict[str, np.ndarray]:
        """One batched body-model forward; people placed on the ground in the camera frame."""
        n = len(scene.people)
        R_pitch = rot_x(scene.pitch)
        go = np.stack([global_orientation(p.yaw, scene.pitch) for p in scene.people])
        body_pose = np.stack([p.body_pose for p in scene.people])
        with torch.inference_mode():
            rotmats = torch.cat(
                [
                    torch.from_numpy(go).float()[:, None],
                    axis_angle_to_rotmat(torch.from_numpy(body_pose).float()),
                ],
                dim=1,
            )
            betas = torch.from_numpy(np.stack([p.betas for p in scene.people])).float()
            gender = torch.tensor([p.gender for p in scene.people], dtype=torch.long)
            out = self.body(rotmats, betas, gender=gender)
            kps = {c: out.keypoints(c) for c in self._conventions}
            go_aa = rotmat_to_axis_angle(torch.from_numpy(go)).numpy()
        vertices = out.vertices.numpy().astype(np.float64)
        # Level-frame coordinates (R_pitch^T p) to stand everyone on the ground y = camera_height: the
        # level y of a point is p . R_pitch[:, 1] (one BLAS product over all vertices).
        level_y = (vertices.reshape(-1, 3) @ R_pitch[:, 1]).reshape(n, -1)
        root_level = out.joints[:, 0].numpy().astype(np.float64) @ R_pitch
        positions = np.stack([p.position for p in scene.people])
        shift_level = np.stack(
            [
                positions[:, 0] - root_level[:, 0],
                scene.camera_height - level_y.max(axis=1),
                positions[:, 1] - root_level[:, 2],
            ],
            axis=1,
        )
        transl = shift_level @ R_pitch.T  # camera frame: R_pitch @ shift
        t = transl[:, None, :]
        result = {
            "vertices": vertices + t,
            "joints": out.joints.numpy().astype(np.float64) + t,
            "transl": transl,
            "pose": np.concatenate([go_aa.reshape(n, 3), body_pose.reshape(n, 69)], axis=1),
            "betas": betas.numpy().astype(np.float64),
            "gender": gender.numpy(),
        }
        for c, (points, present) in kps.items():
            result[c] = points.numpy().astype(np.float64) + t
            result[c + "_present"] = np.asarray(present, dtype=bool)
        return result

    def _render(self, scene: SceneParams, posed: dict[str, np.ndarray]) -> tuple[RenderResult, np.ndarray]:
        normals = vertex_normals(posed["vertices"], self.faces)  # one batched pass for everybody
        meshes = [
            Mesh(posed["vertices"][i], self.faces, self.vertex_colors(person.appearance), normals=normals[i])
            for i, person in enumerate(scene.people)
        ]
        result = self.renderer.render(
            meshes,
            scene.K,
            scene.background,
            light_dir=scene.light_dir,
            ambient=scene.ambient,
            diffuse=scene.diffuse,
            silhouettes=True,
        )
        return result, result.silhouettes

    def generate(self, seed: int, index: int) -> SceneResult:
        """Image ``index`` of the split with seed ``seed``.

        Returns:
            :class:`SceneResult`; each person dict holds ``keypoints`` (17, 3) ``[u, v, v_flag]`` px,
            ``visibility_code`` (17,), ``edge`` (17,) bool, ``segmentation`` (RLE), ``bbox`` (4,) visible
            box, ``area``, ``bbox_amodal`` (4,), ``occlusion_ratio``, ``body_center`` (2,), ``pose`` (72,),
            ``betas`` (10,), ``transl`` (3,), ``gender`` code, ``joints_3d`` (24, 3) m, ``part`` (24, 3),
            ``S`` (24, 4), ``openpose`` (25, 3), ``center`` (2,), ``scale``.
        """
        cfg = self.config
        rng = image_rng(seed, index)
        while True:
            scene = sample_scene(rng, cfg.image_size, people=cfg.people, user_poses=self.user_poses)
            posed = self._pose_people(scene)
            render, amodal = self._render(scene, posed)
            keep = annotatable(render.instance, len(scene.people))
            if keep.any() and not keep.all():
                # Removing a person only uncovers the others, so one re-render settles it.
                scene.people = [p for p, k in zip(scene.people, keep, strict=True) if k]
                posed = {k: v if k.endswith("_present") else v[keep] for k, v in posed.items()}
                render, amodal = self._render(scene, posed)
            if keep.any():
                break
        people = self._annotate(scene, posed, render, amodal)
        return SceneResult(image=render.image, K=scene.K, people=people, render=render, amodal=amodal, scene=scene)

    def _annotate(
        self, scene: SceneParams, posed: dict[str, np.ndarray], render: RenderResult, amodal: np.ndarray
    ) -> list[dict[str, Any]]:
        K = scene.K
        h, w = scene.image_size
        n = len(scene.people)
        coco3d = posed["coco17"]
        coco2d = project(coco3d, K)
        if self._tolerance is None:
            self._tolerance = depth_tolerances(get_convention("coco17").joint_names)
        codes, edge = keypoint_visibility(coco2d, coco3d[..., 2], render.depth, render.instance, self._tolerance)
        vflag = coco_visibility(codes)
        keypoints = np.concatenate([coco2d, vflag[..., None].astype(np.float64)], axis=2)
        masks = render.instance[None] == np.arange(n)[:, None, None]
        rles = encode_masks(masks)
        boxes, areas = rle_boxes_areas(rles)
        amodal_box = amodal_boxes(project(posed["vertices"], K))
        ratios = occlusion_ratios(amodal, render.instance)
        centers_body = body_centers(keypoints, boxes)
        crop_center, crop_size = box_to_center_size(amodal_box, 1.2)
        scale = size_to_spin_scale(crop_size)

        def in_image(uv: np.ndarray, z: np.ndarray) -> np.ndarray:
            px = np.rint(uv)
            return (z > 0) & (px[..., 0] >= 0) & (px[..., 0] < w) & (px[..., 1] >= 0) & (px[..., 1] < h)

        spin2d = project(posed["spin24"], K)
        spin_conf = in_image(spin2d, posed["spin24"][..., 2]) & posed["spin24_present"][None]
        op2d = project(posed["openpose25"], K)
        op_conf = in_image(op2d, posed["openpose25"][..., 2]) & posed["openpose25_present"][None]
        people = []
        for i in range(n):
            people.append(
                {
                    "keypoints": keypoints[i],
                    "visibility_code": codes[i],
                    "edge": edge[i],
                    "num_keypoints": int((vflag[i] > 0).sum()),
                    "segmentation": rles[i],
                    "bbox": boxes[i],
                    "area": int(areas[i]),
                    "bbox_amodal": amodal_box[i],
                    "occlusion_ratio": float(ratios[i]),
                    "body_center": centers_body[i],
                    "pose": posed["pose"][i],
                    "betas": posed["betas"][i],
                    "transl": posed["transl"][i],
                    "gender": int(posed["gender"][i]),
                    "joints_3d": posed["joints"][i],
                    "part": np.concatenate([spin2d[i] * spin_conf[i][:, None], spin_conf[i][:, None]], axis=1),
                    "S": np.concatenate(
                        [
                            posed["spin24"][i] * posed["spin24_present"][:, None],
                            posed["spin24_present"][:, None].astype(np.float64),
                        ],
                        axis=1,
                    ),
                    "openpose": np.concatenate([op2d[i] * op_conf[i][:, None], op_conf[i][:, None]], axis=1),
                    "center": crop_center[i],
                    "scale": float(scale[i]),
                    "user_pose": bool(scene.people[i].user_pose),
                }
            )
        return people
