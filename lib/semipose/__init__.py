"""semipose: PoseDual and PoseCons semi-supervised 2D human pose estimation."""

__version__ = "0.1.0"
