"""The quick guide from the README, as it is written there."""

import numpy as np

import pashmap as pm


def test_quick_guide_runs_on_the_default_context() -> None:
    inp = np.random.rand(100)
    outp = pm.array(100)

    def triple_it(worker_id: int, index: int, value: float) -> None:
        outp[index] = 3 * value

    pm.map(triple_it, inp)
    np.testing.assert_allclose(outp, inp * 3)
