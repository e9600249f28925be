"""The map targets that ship with pashmap-core.

They are registered in the ``pashmap.targets`` entry-point group like any plugin's.
"""
