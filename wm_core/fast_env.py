"""CarRacing-v3, the same pixels faster: cull off-screen polygons, fill the field, reuse surfaces.

Stock ``_render_road`` rotates, zooms and clip-tests ~1,000 polygons (400 grass squares and the
road tiles and kerbs) one vertex at a time in Python, to draw the few dozen that reach the
screen. Here every vertex of the track is transformed at once in NumPy and only polygons with
a vertex inside the stock clip box *plus a one-pixel safety margin* are handed to the stock
``_draw_colored_polygon``, which recomputes their coordinates and makes the exact decision
itself. Candidates are drawn in the stock order with the stock arguments, so a frame is the
same bytes as stock (tested frame by frame against ``gymnasium.make("CarRacing-v3")``); the
margin only makes the cull conservative, never different.

The playfield, one polygon drawn over the whole window on every frame, is a plain fill of its
colour whenever it covers the window with a few pixels to spare (every frame after the first
second's zoom-in, unless the car nears the playfield's edge): the scanline fill of a polygon
that contains the window writes the colour to every pixel, and its anti-aliased edges lie off
the surface. The two 1000x800 surfaces (the canvas and its vertical flip) are kept from frame
to frame rather than allocated anew (a fresh one costs page faults on first touch), and the
score text's font is built once (same glyphs, same pixels).
"""

from __future__ import annotations

import numpy as np
import pygame
from gymnasium.envs.box2d import car_racing as cr

_MARGIN = 1.0  # pixels of slack so float rounding in NumPy vs pygame cannot drop a polygon
_PIXEL_SLACK = 4.0  # a polygon this far outside the window cannot touch it


def _grass_polys() -> np.ndarray:
    """The stock grass squares, in the stock order: (400, 4, 2)."""
    d = cr.GRASS_DIM
    return np.array(
        [
            [(d * x + d, d * y), (d * x, d * y), (d * x, d * y + d), (d * x + d, d * y + d)]
            for x in range(-20, 20, 2)
            for y in range(-20, 20, 2)
        ],
        dtype=np.float64,
    )


def _covers_window(half: float, zoom: float, trans, angle: float) -> bool:
    """Does the square [-half, half]^2, rotated, zoomed and translated as stock draws it, contain
    the window grown by _PIXEL_SLACK pixels? The window's corners are mapped back to the world."""
    c, s = np.cos(angle), np.sin(angle)
    p = _PIXEL_SLACK
    px = np.array([-p, cr.WINDOW_W + p, -p, cr.WINDOW_W + p]) - trans[0]
    py = np.array([-p, -p, cr.WINDOW_H + p, cr.WINDOW_H + p]) - trans[1]
    x, y = (px * c + py * s) / zoom, (-px * s + py * c) / zoom
    return bool(np.all(np.abs(x) < half) and np.all(np.abs(y) < half))


def _on_screen(polys: np.ndarray, zoom: float, trans, angle: float) -> np.ndarray:
    """Mask of polygons that can change a pixel. polys: (N, V, 2).

    Two conservative tests: (1) stock would draw it: a vertex inside the stock clip box (the
    window grown by MAX_SHAPE_DIM), and (2) it can touch the window: its bounding box meets
    the window grown by a few pixels (anti-aliased edges reach one pixel out). A polygon that
    fails (2) is drawn by stock entirely off the surface, where it changes nothing.
    """
    c, s = np.cos(angle), np.sin(angle)
    x = (polys[..., 0] * c - polys[..., 1] * s) * zoom + trans[0]
    y = (polys[..., 0] * s + polys[..., 1] * c) * zoom + trans[1]
    lo, w, h = -cr.MAX_SHAPE_DIM - _MARGIN, cr.WINDOW_W, cr.WINDOW_H
    hi_x, hi_y = w + cr.MAX_SHAPE_DIM + _MARGIN, h + cr.MAX_SHAPE_DIM + _MARGIN
    stock_draws = ((x >= lo) & (x <= hi_x) & (y >= lo) & (y <= hi_y)).any(axis=-1)
    p = _PIXEL_SLACK
    touches = (x.max(-1) >= -p) & (x.min(-1) <= w + p) & (y.max(-1) >= -p) & (y.min(-1) <= h + p)
    return stock_draws & touches


class FastCarRacing(cr.CarRacing):
    """Drop-in CarRacing-v3: identical observations, rewards and infos; faster rendering."""

    _GRASS = _grass_polys()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._road_src = None  # the road_poly list the cached arrays were built from
        self._road_groups: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._font = None
        self._canvas = self._flipped = None  # the 1000x800 surfaces, reused frame after frame

    def _road_arrays(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Road polygons grouped by vertex count -> (indices, vertices (N, V, 2)), per track."""
        if self._road_src is not self.road_poly:
            groups: dict[int, list[int]] = {}
            for i, (poly, _) in enumerate(self.road_poly):
                groups.setdefault(len(poly), []).append(i)
            self._road_groups = {
                v: (
                    np.asarray(idx),
                    np.array([self.road_poly[i][0] for i in idx], np.float64).reshape(-1, v, 2),
                )
                for v, idx in groups.items()
            }
            self._road_src = self.road_poly
        return self._road_groups

    def _render_road(self, zoom, translation, angle):
        b = cr.PLAYFIELD
        if _covers_window(b, zoom, translation, angle):
            # Through NumPy, not Surface.fill: SDL's fill uses streaming stores, which leave the
            # canvas out of cache for the polygons and the flip that follow (slower than stock).
            pygame.surfarray.pixels2d(self.surf)[...] = self.surf.map_rgb(self.bg_color)
        else:
            pygame.surfarray.pixels2d(self.surf)[...] = 0  # a fresh surface's black
            field = [(b, b), (b, -b), (-b, -b), (-b, b)]
            self._draw_colored_polygon(
                self.surf, field, self.bg_color, zoom, translation, angle, clip=False
            )
        for i in np.flatnonzero(_on_screen(self._GRASS, zoom, translation, angle)):
            poly = [tuple(p) for p in self._GRASS[i].tolist()]
            self._draw_colored_polygon(self.surf, poly, self.grass_color, zoom, translation, angle)
        visible = np.zeros(len(self.road_poly), bool)
        for idx, polys in self._road_arrays().values():
            visible[idx] = _on_screen(polys, zoom, translation, angle)
        for i in np.flatnonzero(visible):
            poly, color = self.road_poly[i]
            poly = [(p[0], p[1]) for p in poly]
            color = [int(c) for c in color]
            self._draw_colored_polygon(self.surf, poly, color, zoom, translation, angle)

    def _render(self, mode: str):
        if mode != "state_pixels" or "t" not in self.__dict__:
            return super()._render(mode)
        pygame.font.init()
        if self.clock is None:
            self.clock = pygame.time.Clock()
        if self._canvas is None:
            self._canvas = pygame.Surface((cr.WINDOW_W, cr.WINDOW_H))
            self._flipped = pygame.Surface((cr.WINDOW_W, cr.WINDOW_H))
        self.surf = self._canvas
        angle = -self.car.hull.angle
        zoom = 0.1 * cr.SCALE * max(1 - self.t, 0) + cr.ZOOM * cr.SCALE * min(self.t, 1)
        scroll_x = -(self.car.hull.position[0]) * zoom
        scroll_y = -(self.car.hull.position[1]) * zoom
        trans = pygame.math.Vector2((scroll_x, scroll_y)).rotate_rad(angle)
        trans = (cr.WINDOW_W / 2 + trans[0], cr.WINDOW_H / 4 + trans[1])
        self._render_road(zoom, trans, angle)
        self.car.draw(self.surf, zoom, trans, angle, False)
        # stock's transform.flip, into a surface kept from the last frame
        flipped = pygame.surfarray.pixels2d(self._flipped)
        flipped[...] = pygame.surfarray.pixels2d(self.surf)[:, ::-1]
        del flipped  # unlock the surface before drawing on it
        self.surf = self._flipped
        self._render_indicators(cr.WINDOW_W, cr.WINDOW_H)
        if self._font is None:
            self._font = pygame.font.Font(pygame.font.get_default_font(), 42)
        text = self._font.render(f"{self.reward:04.0f}", True, (255, 255, 255), (0, 0, 0))
        rect = text.get_rect()
        rect.center = (60, cr.WINDOW_H - cr.WINDOW_H * 2.5 / 40.0)
        self.surf.blit(text, rect)
        return self._create_image_array(self.surf, (cr.STATE_W, cr.STATE_H))
