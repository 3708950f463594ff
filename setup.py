"""Builds the Cython box NMS extension ``semipose.nms.cpu_nms``; everything else is in pyproject.toml."""
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "semipose.nms.cpu_nms",
        ["lib/semipose/nms/cpu_nms.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-Wno-cpp", "-Wno-unused-function"],
    )
]

setup(ext_modules=cythonize(extensions, language_level=3))
