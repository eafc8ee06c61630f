"""The observation's forecast features: what the Holt forecaster says of the rate window, the
same in the env and in the deployed policy, and absent unless asked for."""

from __future__ import annotations

import numpy as np

from jbrl.envs.observation import FORECAST_H, forecast_features
from jbrl.envs.serving import ServingEnv
from jbrl.scenario import Scenario
from jbrl.scenario.forecast import HoltForecaster


def test_flat_rising_and_falling_windows() -> None:
    flat = np.full((12, 2), 0.8)
    np.testing.assert_allclose(forecast_features(flat, 3), [0.8, 0.8, 0.8, 0.8])
    ramp = np.linspace(0.5, 1.6, 12)[:, None]
    point, upper = forecast_features(ramp, 3)
    assert point > 1.6 and upper > point  # a rising trend is carried forward, with a band
    f = HoltForecaster()
    for x in ramp[:, 0]:
        f.update(float(x))
    assert (point, upper) == (f.forecast(3), f.upper(3, 2.0))
    point, upper = forecast_features(ramp[::-1], 3)
    assert 0.0 <= point < 0.5 and upper >= point  # falling: never below zero


def test_the_env_observes_the_forecast_of_its_rate_window(tiny: Scenario) -> None:
    env = ServingEnv({"accuracy": 65.0, "history": 6, "forecast": True}, scenario_obj=tiny)
    plain = ServingEnv({"accuracy": 65.0, "history": 6}, scenario_obj=tiny)
    ns = len(env.serving.sources)
    assert env.observation_space.shape[0] == plain.observation_space.shape[0] + 2 * ns
    env.reset(seed=3)
    for _ in range(8):
        obs, *_ = env.step(env.action_space.sample())
    names = list(env.encoder.sizes)
    at = sum(list(env.encoder.sizes.values())[: names.index("forecast")])
    hist = [env.serving.rates_array(r) for r in env.rate_history[-6:]]
    rates = np.array(hist) / env.serving.nominal
    want = np.clip(forecast_features(rates, FORECAST_H), 0.0, 4.0)
    np.testing.assert_allclose(obs[at : at + 2 * ns], want, rtol=1e-5, atol=1e-6)
