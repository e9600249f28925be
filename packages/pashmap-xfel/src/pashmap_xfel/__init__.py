"""pashmap-xfel: map kernels over European XFEL data (EXtra-data) with pashmap.

With this package installed, ``pm.map`` accepts EXtra-data objects directly; there is
nothing to import:

```python
import numpy as np
import extra_data
import pashmap as pm

run = extra_data.open_run(proposal=700000, run=1)
xgm = run["SA1_XTD2_XGM/DOOCS/MAIN:output", "data.intensityTD"]
out = pm.array(len(xgm.train_ids), fill=np.nan)

def pulse_energy(worker_id, index, train_id, intensity):
    out[index] = intensity[:40].sum()

pm.map(pulse_energy, xgm)
```

The ``pashmap.targets`` entry point ``extra_data`` names :class:`ExtraDataTarget`;
construct it yourself to pass options such as ``require_all``. Importing this package
does not import EXtra-data.
"""

from pashmap_xfel._version import __version__
from pashmap_xfel.errors import DataReadError
from pashmap_xfel.handles import close_inherited_files
from pashmap_xfel.target import ExtraDataTarget

__all__ = ["DataReadError", "ExtraDataTarget", "__version__", "close_inherited_files"]
