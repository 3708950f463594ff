"""The bottom layer: file I/O helpers and the joint tables.

Modules here import only the standard library, numpy and torch, never another part of semipose,
so every other layer may use them.
"""
