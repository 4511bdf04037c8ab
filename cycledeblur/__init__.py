"""cycledeblur: unpaired image deblurring with CycleGAN-style models."""

__version__ = "0.1.0"
