"""Benchmarks: the standard workloads and the ``pashmap bench`` command.

Nothing in the runtime imports this package: ``import pashmap``, a map, ``pashmap info``
and ``pashmap demo`` never load it; the ``pashmap`` command loads it only for
``pashmap bench``. :mod:`pashmap.bench.workloads` holds the workloads (run one in a fresh
process with ``python -m pashmap.bench.workloads WORKLOAD --context NAME``) and
:mod:`pashmap.bench.command` the command that runs them all. A plugin adds a workload by
naming a :class:`pashmap.bench.workloads.Workload` in the ``pashmap.workloads``
entry-point group, from a module of its own that its runtime does not import either
(pashmap-xfel's is ``pashmap_xfel.bench``).
"""
