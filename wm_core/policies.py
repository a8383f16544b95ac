"""Host-side driving policies for data collection: Brownian random and a privileged heuristic.

Every policy has ``reset(seed, env)`` and ``act(obs, env) -> action (3,) float32``; each
episode's randomness comes from a local generator seeded with the episode's track seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from wm_core.env import on_road

LOW = np.array([-1.0, 0.0, 0.0], np.float32)
HIGH = np.array([1.0, 1.0, 1.0], np.float32)


class BrownianPolicy:
    """a_{t+1} = clip(a_t + sqrt(dt) * N(0, I)), as ctallec's world-models samples rollouts.

    Smoother than i.i.d. noise, so the car actually travels and turns.
    """

    def __init__(self, dt: float):
        self.dt = dt

    def reset(self, seed: int, env) -> None:
        self.rng = np.random.default_rng([seed, 1])
        self.a = self.rng.uniform(LOW, HIGH).astype(np.float32)

    def act(self, obs, env, frame=None) -> Float[np.ndarray, " 3"]:
        a = self.a
        self.a = np.clip(a + math.sqrt(self.dt) * self.rng.standard_normal(3), LOW, HIGH)
        self.a = self.a.astype(np.float32)
        return a


@dataclass(frozen=True)
class DriverStyle:
    a_lat: float  # lateral acceleration the speed plan allows in corners (v^2 / R)
    a_brake: float  # deceleration the speed plan assumes before a corner
    v_max: float
    steer_noise: float  # std of Gaussian noise on steering
    perturb_prob: float  # per-frame chance to start a deliberate swerve off the road
    commit_prob: float = 0.0  # per-frame chance, at speed, to hold one action at full throttle


STYLES = {
    "plain": DriverStyle(a_lat=45.0, a_brake=45.0, v_max=110.0, steer_noise=0.0, perturb_prob=0.0),
    # swerves push the car onto the grass; the same controller then brings it back
    "recovery": DriverStyle(
        a_lat=45.0, a_brake=45.0, v_max=80.0, steer_noise=0.1, perturb_prob=0.012
    ),
    # plans corners with far more grip than the car has and brakes late: slides, spins
    "aggressive": DriverStyle(
        a_lat=140.0, a_brake=120.0, v_max=140.0, steer_noise=0.05, perturb_prob=0.0
    ),
    # the plain driver, but now and then it holds a fixed steering at full throttle for 20-60
    # frames whatever the road does: what a car that holds its line meets (the dream's exploit)
    "commit": DriverStyle(
        a_lat=45.0, a_brake=45.0, v_max=110.0, steer_noise=0.0, perturb_prob=0.0, commit_prob=0.02
    ),
}
TILE = 3.5  # approximate tile length along the centre line


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


class HeuristicPolicy:
    """Pure pursuit on the track's centre line with a curvature-based speed target.

    Privileged: reads ``env.unwrapped.track`` and the car body, never the pixels.
    """

    def __init__(self, mode: str):
        self.mode = mode
        self.style = STYLES[mode]

    def reset(self, seed: int, env) -> None:
        u = env.unwrapped
        track = np.array(u.track, np.float64)  # (N, 4): alpha, beta, x, y
        self.xy, self.beta = track[:, 2:4], track[:, 1]
        self.idx = 0
        self.rng = np.random.default_rng([seed, 2])
        self.swerve_left = 0  # frames of deliberate swerve remaining
        self.swerve_dir = 0.0
        self.commit_left = 0
        self.commit_steer = 0.0
        self.calm = 0  # frames on the road since the last swerve
        self.excursions = 0  # times all four wheels left the road
        self.recoveries = 0  # times the car came back onto the road
        self._was_on_road = True
        self._turn = 1.0  # committed turn direction when the target is behind

    def _nearest(self, pos) -> int:
        n = len(self.xy)
        window = (self.idx + np.arange(-5, 30)) % n
        d = np.linalg.norm(self.xy[window] - pos, axis=1)
        return int(window[np.argmin(d)])

    def act(self, obs, env, frame=None) -> Float[np.ndarray, " 3"]:
        car = env.unwrapped.car.hull
        pos = np.array(car.position)
        speed = float(np.hypot(*car.linearVelocity))
        n, s = len(self.xy), self.style
        self.idx = self._nearest(pos)
        dist = float(np.linalg.norm(self.xy[self.idx] - pos))
        # look further ahead when far from the centre line: a near target makes the car orbit it
        target = self.xy[(self.idx + 2 + int((0.2 * speed + dist) / TILE)) % n]
        fwd = np.array([-math.sin(car.angle), math.cos(car.angle)])
        d = target - pos
        err = math.atan2(fwd[0] * d[1] - fwd[1] * d[0], fwd @ d)  # > 0: target to the left
        if abs(err) > 2.0:  # target behind: keep turning one way instead of flip-flopping at +-pi
            err = self._turn * abs(err)
        else:
            self._turn = math.copysign(1.0, err)
        steer = -1.5 * err + 0.05 * car.angularVelocity  # steer > 0 turns right; yaw damping
        # speed plan: every corner within 40 tiles caps the speed we may carry now
        j = np.arange(1, 41)
        turn = np.abs(_wrap(self.beta[(self.idx + j + 5) % n] - self.beta[(self.idx + j) % n]))
        radius = 5 * TILE / np.maximum(turn, 1e-3)
        v_corner = np.sqrt(s.a_lat * radius)
        v_allowed = np.sqrt(v_corner**2 + 2 * s.a_brake * j * TILE)
        v_target = min(s.v_max, float(v_allowed.min()))
        if not on_road(env):
            v_target = min(v_target, 15.0)  # grass has 0.6x grip: come back slowly
        gas = (1.0 if abs(steer) < 0.5 else 0.4) if speed < v_target else 0.0
        brake = 0.6 if speed > v_target + 4 else 0.0
        steer += s.steer_noise * self.rng.standard_normal()
        steer, gas, brake = self._perturb(steer, gas, brake, env)
        if self.commit_left > 0:
            self.commit_left -= 1
            steer, gas, brake = self.commit_steer, 1.0, 0.0
        elif s.commit_prob and self.calm > 60 and speed > 30 and self.rng.random() < s.commit_prob:
            self.calm = 0
            self.commit_left = int(self.rng.integers(20, 61))
            self.commit_steer = float(self.rng.choice([0.0, self.rng.uniform(-0.3, 0.3)]))
            steer, gas, brake = self.commit_steer, 1.0, 0.0
        return np.clip(np.array([steer, gas, brake], np.float32), LOW, HIGH)

    def _perturb(self, steer, gas, brake, env):
        road = on_road(env)
        self.excursions += self._was_on_road and not road
        self.recoveries += road and not self._was_on_road
        self._was_on_road = road
        self.calm = self.calm + 1 if road else 0
        if self.swerve_left > 0:
            self.swerve_left -= 1
            return 0.7 * self.swerve_dir, 0.5, 0.0
        # swerve again only after the car has been back on the road for a while
        if (
            self.calm > 60
            and self.style.perturb_prob
            and self.rng.random() < self.style.perturb_prob
        ):
            self.calm = 0
            self.swerve_left = int(self.rng.integers(15, 35))
            self.swerve_dir = float(self.rng.choice([-1.0, 1.0]))
        return steer, gas, brake
