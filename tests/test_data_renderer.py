"""The analytic renderer: exact depth, masks inside boxes, local edits, backgrounds, errors."""
import math
import re

import numpy as np
import pytest
import torch

from neuralassets import Asset, Camera, Scene, ValidationError
from neuralassets.data import GeneratorConfig, generate_scene, render, render_background, render_scene, sample_scene_spec
from neuralassets.data.renderer import PRIMITIVES, SHAPES, TORUS_TUBE, _intersect_parts, _part_normal
from neuralassets.data.synthetic import HELD_OUT_SHAPES
from neuralassets.geometry import bounding_box_2d, euler_to_matrix, project_box, project_points
from neuralassets.image_ops import masks_to_boxes


@pytest.fixture(scope="module", params=["training shapes", "held-out shapes"])
def scene(request):
    if request.param == "training shapes":
        return generate_scene(11, frames=[0, 9, 23])
    # Seed 0 holds both held-out shapes, rings lying flat, standing and rolling on their rim.
    return generate_scene(0, GeneratorConfig(shapes=HELD_OUT_SHAPES), frames=[0, 9, 23])


def _one_object_scene(shape: str, size, center, yaw: float = 0.3, texture: str = "solid", W: int = 96, H: int = 72):
    world = sample_scene_spec(0).metadata
    R = euler_to_matrix(torch.tensor(yaw), torch.tensor(0.0), torch.tensor(0.0))
    asset = Asset(1, shape, torch.tensor([center]), torch.tensor([size]), R[None], torch.zeros(1, 4), torch.zeros(1),
                  attributes={"shape": shape, "rgb": [0.8, 0.2, 0.2], "rgb2": [0.1, 0.2, 0.9], "texture": texture})
    cam = Camera.look_at([1.0, -4.0, 2.0], [0.0, 0.0, 0.3], 50.0, W, H)
    return Scene(torch.zeros(1, 3, H, W), [cam], [asset], metadata=world)


def _pixel_rays(cam: Camera):
    """World origin and unit directions (H, W, 3) through pixel centres, in float64."""
    v, u = torch.meshgrid(torch.arange(cam.height, dtype=torch.float64) + 0.5,
                          torch.arange(cam.width, dtype=torch.float64) + 0.5, indexing="ij")
    K, R, t = cam.K.double(), cam.R.double(), cam.t.double()
    cam_dirs = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    d = cam_dirs @ R  # R^T applied to row vectors
    return -R.T @ t, d / d.norm(dim=-1, keepdim=True), R[2]


def test_sphere_depth_is_the_analytic_ray_distance():
    s = _one_object_scene("sphere", [0.8, 0.8, 0.8], [0.2, 0.1, 0.4])
    out = render(s)
    origin, d, forward = _pixel_rays(s.cameras[0])
    c = s.assets[0].centers[0].double()
    oc = origin - c
    b = (d * oc).sum(-1)
    disc = b * b - (oc @ oc - 0.4 ** 2)
    analytic_hit = disc > 0
    t = -b - torch.sqrt(disc.clamp(min=0))
    z = t * (d @ forward)
    mask = out.instance[0] == 1
    assert mask.sum() > 200
    # The mask is the analytic silhouette except possibly at grazing pixels on its rim.
    assert (mask != analytic_hit).sum() <= 2
    both = mask & analytic_hit
    assert torch.allclose(out.depth[0][both].double(), z[both], atol=1e-4, rtol=0)


def test_cube_depth_is_the_analytic_ray_distance():
    s = _one_object_scene("cube", [0.6, 0.5, 0.7], [0.0, 0.2, 0.35], yaw=0.7)
    out = render(s)
    origin, d, forward = _pixel_rays(s.cameras[0])
    a = s.assets[0]
    R, c, half = a.rotations[0].double(), a.centers[0].double(), a.sizes[0].double() / 2
    o_local, d_local = R.T @ (origin - c), d @ R
    t1, t2 = (-half - o_local) / d_local, (half - o_local) / d_local
    t_enter = torch.minimum(t1, t2).amax(-1)
    t_exit = torch.maximum(t1, t2).amin(-1)
    analytic_hit = t_enter < t_exit
    mask = out.instance[0] == 1
    assert mask.sum() > 200 and (mask != analytic_hit).sum() <= 2
    both = mask & analytic_hit
    assert torch.allclose(out.depth[0][both].double(), (t_enter * (d @ forward))[both], atol=1e-4, rtol=0)


def _entries(primitive: str, origins, directions):
    """t and face of rays (in part coordinates) entering one part of ``primitive``."""
    o, d = torch.tensor(origins, dtype=torch.float32), torch.tensor(directions, dtype=torch.float32)
    index = torch.full((len(o),), PRIMITIVES.index(primitive), dtype=torch.long)
    return _intersect_parts(o, d, index, 1e-4)


def test_wedge_entries_are_the_hand_computed_hits():
    """The wedge is the box's half where x + z <= 0 (part coordinates)."""
    t, face = _entries("wedge",
                       [[0.0, 0.0, 5.0], [0.5, 0.0, 5.0], [-5.0, 0.0, 0.5], [5.0, 0.0, -0.5], [0.5, -5.0, 0.2]],
                       [[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    # Down onto the slope at z = -x; through the upright face x = -1; in at x = 0.5 from the +x side; past it.
    assert torch.allclose(t[:4], torch.tensor([5.0, 5.5, 4.0, 4.5]), atol=1e-5) and t[4] == math.inf
    assert face[:4].tolist() == [-1, -1, 0, -1]
    q = torch.tensor([[0.0, 0.0, 0.0]])
    normal = _part_normal(q, torch.tensor([[0.0, 0.0, -1.0]]), torch.tensor([PRIMITIVES.index("wedge")]), torch.tensor([-1]))
    assert torch.allclose(normal / normal.norm(), torch.tensor([[1.0, 0.0, 1.0]]) / math.sqrt(2))


def test_torus_entries_are_the_hand_computed_hits():
    """The torus ring about z: tube centre radius 1 - TORUS_TUBE, tube spanning z in [-1, 1]."""
    ring = 1 - TORUS_TUBE
    assert TORUS_TUBE == 0.3  # the numbers below are worked out for this tube

    def tube_edges(z):  # radii where the plane at height z cuts the tube
        half = math.sqrt(TORUS_TUBE ** 2 - (TORUS_TUBE * z) ** 2)
        return ring - half, ring + half

    inner, outer = tube_edges(0.5)
    _, grazing = tube_edges(0.99)  # a chord only 0.085 long near the tube's top
    origins = [[0.7, 0.0, 5.0], [0.0, 0.0, 5.0], [-5.0, 0.5, 0.0], [-5.0, 0.0, 0.5], [0.0, 0.0, 0.5], [-5.0, 0.0, 0.99],
               [0.0, 0.0, 1.2], [-5.0, 0.0, 0.0]]
    directions = [[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                  [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]
    t, face = _entries("torus", origins, directions)
    expected = [4.0,  # down onto the top of the tube
                math.inf,  # down through the hole
                5.0 - math.sqrt(1.0 - 0.25),  # across at y = 0.5: the outer rim x^2 + y^2 = 1
                5.0 - outer,  # across at half height: the first of the two tube crossings
                inner,  # from the centre of the hole outwards: the inner rim
                5.0 - grazing,
                math.inf,  # above the ring (outside the part's box)
                2.0]  # a direction of length 2 halves t
    assert torch.allclose(t, torch.tensor(expected), atol=1e-5), t
    assert face.tolist() == [-1, -1, -1, -1, -1, -1, -1, 0]  # the last one touches the box's face at the rim's tangent point
    q = torch.tensor([[1.0, 0.0, 0.0], [ring, 0.0, 1.0], [ring - TORUS_TUBE, 0.0, 0.0], [0.0, -1.0, 0.0]])
    index = torch.full((4,), PRIMITIVES.index("torus"))
    normal = _part_normal(q, torch.zeros(4, 3), index, torch.full((4,), -1))
    outward = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    assert torch.allclose(normal / normal.norm(dim=-1, keepdim=True), outward, atol=1e-6)


def _world_to_unit(scene: Scene):
    """Pixel rays (float64) in the only asset's unit-box coordinates scaled to [-1, 1]: origin (3,), directions (H, W, 3)."""
    origin, d, forward = _pixel_rays(scene.cameras[0])
    a = scene.assets[0]
    R, c, half = a.rotations[0].double(), a.centers[0].double(), a.sizes[0].double() / 2
    return (R.T @ (origin - c)) / half, (d @ R) / half, d @ forward


def test_wedge_depth_is_the_analytic_ray_distance():
    s = _one_object_scene("wedge", [0.8, 0.5, 0.6], [0.1, 0.0, 0.3], yaw=2.2)
    out = render(s)
    o, d, cos = _world_to_unit(s)
    t1, t2 = (-1 - o) / d, (1 - o) / d
    t_enter, t_exit = torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1)
    # Clip the box's chord by the half-space x + z <= 0.
    rate, level = d[..., 0] + d[..., 2], o[0] + o[2]
    crossing = -level / rate
    t_enter = torch.where(rate < 0, torch.maximum(t_enter, crossing), t_enter)
    t_exit = torch.where(rate > 0, torch.minimum(t_exit, crossing), t_exit)
    analytic_hit = (t_enter < t_exit) & ((rate != 0) | (level <= 0))
    mask = out.instance[0] == 1
    assert mask.sum() > 200 and (mask != analytic_hit).sum() <= 2
    both = mask & analytic_hit
    assert torch.allclose(out.depth[0][both].double(), (t_enter * cos)[both], atol=1e-4, rtol=0)


@pytest.mark.parametrize("pitch", [0.0, 1.3])
def test_torus_depth_is_the_nearest_root_of_its_quartic(pitch):
    """Against numpy's eigenvalue root finder on the ring's quartic, ray by ray; the floor shows through the hole."""
    s = _one_object_scene("torus", [1.0, 1.0, 0.3], [0.0, 0.0, 0.5 if pitch else 0.15], yaw=0.4)
    if pitch:  # standing on its rim, turned to show the camera its hole
        s.assets[0].rotations[0] = euler_to_matrix(torch.tensor(-1.1), torch.tensor(pitch), torch.tensor(0.0))
    out = render(s)
    o, d, cos = _world_to_unit(s)
    squash = torch.tensor([1.0, 1.0, TORUS_TUBE], dtype=torch.float64)
    o, d = o * squash, d * squash
    ring = (1 - TORUS_TUBE) ** 2
    analytic = torch.full(d.shape[:2], math.inf, dtype=torch.float64)
    for y in range(d.shape[0]):
        for x in range(d.shape[1]):
            v = d[y, x]
            a2, a1, a0 = float(v @ v), 2 * float(o @ v), float(o @ o) + ring - TORUS_TUBE ** 2
            b2, b1, b0 = float(v[0] ** 2 + v[1] ** 2), 2 * float(o[0] * v[0] + o[1] * v[1]), float(o[0] ** 2 + o[1] ** 2)
            roots = np.roots([a2 * a2, 2 * a2 * a1, a1 * a1 + 2 * a2 * a0 - 4 * ring * b2, 2 * a1 * a0 - 4 * ring * b1,
                              a0 * a0 - 4 * ring * b0])
            real = roots.real[(np.abs(roots.imag) < 1e-7) & (roots.real > 0)]
            if len(real):
                analytic[y, x] = real.min()
    analytic_hit = torch.isfinite(analytic)
    mask = out.instance[0] == 1
    assert mask.sum() > 200 and (mask != analytic_hit).sum() <= 2
    both = mask & analytic_hit
    assert torch.allclose(out.depth[0][both].double(), (analytic * cos)[both], atol=1e-4, rtol=0)


def test_the_floor_shows_through_the_ring():
    s = _one_object_scene("torus", [0.9, 0.9, 0.27], [0.0, 0.0, 0.135])
    s.cameras[0] = Camera.look_at([0.2, -0.5, 3.0], [0.0, 0.0, 0.0], 50.0, s.width, s.height)
    out = render(s)
    (u, v), = s.cameras[0].project(torch.zeros(1, 3))[0].tolist()  # the floor point at the ring's centre
    centre = out.instance[0, int(v), int(u)]
    row = "".join("#" if i == 1 else "." for i in out.instance[0, int(v)].tolist()).strip(".")
    assert centre == 0 and re.fullmatch(r"#+\.{4,}#+", row) and (out.instance[0] == 1).sum() > 300
    origin, d, forward = _pixel_rays(s.cameras[0])
    floor_depth = -origin[2] / d[int(v), int(u), 2] * (d[int(v), int(u)] @ forward)
    assert abs(float(out.depth[0, int(v), int(u)]) - float(floor_depth)) < 1e-4


@pytest.mark.parametrize("shape", HELD_OUT_SHAPES)
def test_held_out_shapes_cast_shadows_and_take_their_texture(shape):
    s = _one_object_scene(shape, [0.8, 0.7, 0.5], [0.0, 0.0, 0.25], texture="stripes")
    lit, unshadowed = render(s), render(s, shadows=False)
    assert torch.equal(lit.instance, unshadowed.instance) and torch.equal(lit.depth, unshadowed.depth)
    floor = lit.instance[0] == 0
    darker = (unshadowed.rgb[0] - lit.rgb[0]).mean(0)
    assert (darker[floor] > 0.05).sum() > 20 and (darker >= 0).all()
    on_object = lit.rgb[0][:, lit.instance[0] == 1]
    assert (on_object.std(dim=1) > 0.1).any()  # both stripe colours show


def test_background_depth_is_finite_and_floor_depth_matches_the_plane():
    s = _one_object_scene("cone", [0.5, 0.5, 0.7], [0.0, 0.0, 0.35])
    out = render(s)
    assert torch.isfinite(out.depth).all() and (out.depth > 0).all()
    origin, d, forward = _pixel_rays(s.cameras[0])
    t_floor = -origin[2] / d[..., 2]
    bottom_row = out.instance[0, -1] == 0  # the bottom row looks at the floor near the camera
    assert torch.allclose(out.depth[0, -1][bottom_row].double(), (t_floor * (d @ forward))[-1][bottom_row], atol=1e-4)


def test_every_object_pixel_lies_inside_its_projected_box(scene):
    out = render(scene)
    H, W = scene.height, scene.width
    for f, cam in enumerate(scene.cameras):
        for a in scene.assets:
            ys, xs = (out.instance[f] == a.id).nonzero(as_tuple=True)
            if len(xs) == 0:
                continue
            b = a.box(f)
            uv, _ = project_box(b.center, b.size, b.rotation, cam.K, cam.R, cam.t)
            x0, y0, x1, y1 = bounding_box_2d(uv, W, H).tolist()
            assert (xs + 0.5 >= x0 - 1).all() and (xs + 0.5 <= x1 + 1).all(), a.name
            assert (ys + 0.5 >= y0 - 1).all() and (ys + 0.5 <= y1 + 1).all(), a.name


def _shadow_bound(asset: Asset, frame: int, cam: Camera, light) -> torch.Tensor:
    """Pixel box around the object's 3D box and that box projected along the light onto the floor."""
    b = asset.box(frame)
    corners = b.corners()
    on_floor = corners - (corners[:, 2:3] / light[2]) * light
    uv, _ = project_points(torch.cat([corners, on_floor]), cam.K, cam.R, cam.t)
    return bounding_box_2d(uv, cam.width, cam.height)


def test_moving_one_object_changes_pixels_only_in_its_old_and_new_box_and_shadow(scene):
    light = torch.tensor(scene.metadata["renderer"]["light"]["direction"])
    light = light / light.norm()
    moved = scene.copy()
    a = moved.assets[0]
    a.centers[:, :2] += torch.tensor([0.35, -0.25])
    before, after = render(scene), render(moved)
    H, W = scene.height, scene.width
    ys = torch.arange(H).view(-1, 1) + 0.5
    xs = torch.arange(W).view(1, -1) + 0.5
    changed_anything = False
    for f, cam in enumerate(scene.cameras):
        allowed = torch.zeros(H, W, dtype=torch.bool)
        for asset in (scene.assets[0], a):
            x0, y0, x1, y1 = _shadow_bound(asset, f, cam, light).tolist()
            allowed |= (xs >= x0 - 1) & (xs <= x1 + 1) & (ys >= y0 - 1) & (ys <= y1 + 1)
        diff = (before.rgb[f] != after.rgb[f]).any(0) | (before.instance[f] != after.instance[f]) | (
            before.depth[f] != after.depth[f])
        assert not (diff & ~allowed).any(), f"frame {f}: pixels changed outside the moved object's region"
        changed_anything |= bool(diff.any())
    assert changed_anything


def test_texture_turns_with_the_object():
    a = _one_object_scene("sphere", [0.8, 0.8, 0.8], [0.0, 0.0, 0.4], yaw=0.0, texture="stripes")
    b = _one_object_scene("sphere", [0.8, 0.8, 0.8], [0.0, 0.0, 0.4], yaw=0.8, texture="stripes")
    ra, rb = render(a), render(b)
    assert torch.equal(ra.instance, rb.instance)  # a sphere's silhouette does not change
    inside = ra.instance[0] == 1
    assert (ra.rgb[0][:, inside] - rb.rgb[0][:, inside]).abs().mean() > 0.05


def test_render_is_deterministic_and_frame_subsets_match(scene):
    full = render(scene)
    again = render(scene)
    part = render(scene, frames=[2, 0])
    for name in ("rgb", "instance", "depth", "visibility"):
        assert torch.equal(getattr(full, name), getattr(again, name))
        assert torch.equal(getattr(full, name)[[2, 0]], getattr(part, name))
    assert torch.equal(full.rgb, (full.rgb * 255).round() / 255)


def test_supersampling_smooths_edges_only(scene):
    plain, fine = render(scene, frames=[0]), render(scene, frames=[0], supersample=True)
    assert fine.rgb.shape == plain.rgb.shape
    assert torch.equal(fine.instance, plain.instance) and torch.equal(fine.depth, plain.depth)
    diff = (fine.rgb - plain.rgb).abs().amax(1)[0]
    assert 0 < diff.mean() < 0.03


def test_render_scene_fills_masks_boxes_and_visibility(scene):
    out = render_scene(scene)
    for a in out.assets:
        assert torch.equal(a.boxes_2d, masks_to_boxes(a.masks))
        assert ((a.visibility > 0) == a.masks.flatten(1).any(1)).all()
    assert torch.equal(out.frames, scene.frames)
    assert masks_to_boxes(torch.tensor([[0, 0, 0], [0, 1, 0]], dtype=torch.bool)).tolist() == [1.0, 1.0, 2.0, 2.0]


def test_background_swap_changes_backdrop_not_objects(scene):
    other = sample_scene_spec(5)
    swapped = scene.copy()
    swapped.background = render_background(scene, 0, other.metadata["renderer"])
    a, b = render(scene), render(swapped)
    assert torch.equal(a.instance, b.instance) and torch.equal(a.depth, b.depth)
    background = a.instance == 0
    assert (a.rgb - b.rgb).abs().amax(1)[background].mean() > 0.02
    # The background image is the object-free render from that camera.
    bg = swapped.background
    assert bg.image.shape == (3, scene.height, scene.width) and bg.attributes["floor"] == other.metadata["renderer"]["floor"]
    empty = swapped.replace(assets=[])
    assert torch.equal(render(empty, frames=[0]).rgb[0], bg.image)


def test_every_shape_fills_its_box_exactly():
    """Each shape touches all six faces of its unit box and stays inside it."""
    for name, parts in SHAPES.items():
        lo = torch.tensor([min(c[i] - h[i] for _, c, h in parts) for i in range(3)])
        hi = torch.tensor([max(c[i] + h[i] for _, c, h in parts) for i in range(3)])
        assert torch.allclose(lo, torch.full((3,), -0.5)) and torch.allclose(hi, torch.full((3,), 0.5)), name


def test_render_errors_name_the_bad_asset_or_field(scene):
    bad = scene.copy()
    bad.assets[1].attributes = {"shape": "teapot"}
    with pytest.raises(ValidationError, match=r"assets\[1\].*teapot"):
        render(bad)
    no_params = scene.replace(metadata={})
    with pytest.raises(ValidationError, match="renderer"):
        render(no_params)
    with pytest.raises(ValidationError, match="frame index"):
        render(scene, frames=[7])
    with pytest.raises(ValidationError, match="empty"):
        render(scene, frames=[])


def test_visibility_drops_when_an_object_leaves_the_frame():
    s = _one_object_scene("cube", [0.6, 0.6, 0.6], [0.0, 0.0, 0.3])
    out = render(s)
    assert out.visibility[0, 0] == 1.0
    uv, _ = project_points(s.assets[0].centers[0][None], s.cameras[0].K, s.cameras[0].R, s.cameras[0].t)
    right = s.copy()
    # Slide along the camera's x axis until the centre sits on the right image border.
    step = s.cameras[0].R[0] * (s.cameras[0].width - float(uv[0, 0])) / s.cameras[0].K[0, 0] * float(
        s.cameras[0].project(s.assets[0].centers[0][None])[1][0])
    right.assets[0].centers[0, :2] += step[:2]
    v = float(render(right).visibility[0, 0])
    assert 0.25 < v < 0.75, v
    assert math.isfinite(v)


def test_floor_and_backdrop_patterns_repeat_across_the_origin():
    from neuralassets.data.renderer import _backdrop_colour, _floor_albedo, _pack_world

    params = sample_scene_spec(0).metadata["renderer"]
    xy = torch.rand(500, 2, generator=torch.Generator().manual_seed(0)) * 4 - 2
    for texture in ("checker", "grid"):
        world = _pack_world({**params, "floor": {**params["floor"], "texture": texture, "scale": 0.5}})
        # Period 2 cells (checker parity); negative coordinates must behave like positive ones.
        assert torch.allclose(_floor_albedo(world, xy), _floor_albedo(world, xy + 2.0), atol=1e-5), texture
    for style in ("stripes", "dots"):
        world = _pack_world({**params, "backdrop": {**params["backdrop"], "style": style, "scale": 1.0}})
        angle = torch.linspace(-3.0, 3.0, 200)
        wall = torch.stack([10 * torch.cos(angle), 10 * torch.sin(angle), torch.linspace(0.2, 3.0, 200)], -1)
        shifted = torch.stack([10 * torch.cos(angle + 0.2), 10 * torch.sin(angle + 0.2), wall[:, 2] + 1.0], -1)
        # A shift of exactly 2 pattern periods along the wall (0.2 rad at 10 m) and one up.
        assert (_backdrop_colour(world, wall) - _backdrop_colour(world, shifted)).abs().amax(-1).gt(1e-3).float().mean() < 0.03
