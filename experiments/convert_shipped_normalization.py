"""One-off conversion of the project's own shipped ``vecnormalize.pkl`` to ``normalization.json``.

jbrl no longer unpickles policy files (a pickle runs code when it is loaded). The policies that
ship in ``configs/policies/<scenario>/`` had their observation statistics as stable-baselines3's
``VecNormalize`` pickle; this script converts them, once, to the JSON that
:mod:`jbrl.agents.ppo.files` reads, then removes the pickle::

    python experiments/convert_shipped_normalization.py

It unpickles only files of this checkout's ``configs/policies`` (written by the project's own
training run), never a folder given on the command line. Check afterwards that the figures did
not change: ``experiments/same_figures.py capture`` before and after, then ``compare``.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "configs" / "policies"


def main() -> int:
    from jbrl.agents.ppo.files import LEGACY_NORM_FILE, NORM_FILE, save_normalization

    done = 0
    for pkl in sorted(SHIPPED.glob(f"*/{LEGACY_NORM_FILE}")):
        if pkl.resolve().parent.parent != SHIPPED.resolve():
            continue  # only the project's own folders
        with open(pkl, "rb") as fh:
            vn = pickle.load(fh)  # noqa: S301 - the project's own file, converted once
        out = save_normalization(vn, pkl.with_name(NORM_FILE))
        pkl.unlink()
        print(f"{pkl.relative_to(ROOT)} -> {out.relative_to(ROOT)}")
        done += 1
    print(f"converted {done} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
