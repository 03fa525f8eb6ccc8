"""hwnas: profile a device, search a subnet under a budget, export it to the device.

``import hwnas`` is light: it imports no torch and no runtime. Heavy libraries
are imported inside the functions and backend modules that need them.
"""

__version__ = "0.1.0"
