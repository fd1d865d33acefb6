"""kh_kernel: the Python half of kernel-host-python.

The modules of this package are embedded into the kernel binary and imported from memory (see
_importer.py). Only `kernel` is imported at start-up; everything else (display formatting,
completion, matplotlib support, IPython magics, the variables comm) is imported on first use so
that the kernel starts in a few tens of milliseconds.

Settings a user may change from a cell:

    import kh_kernel
    kh_kernel.figure_formats = ("svg",)   # matplotlib output: any of "png", "svg"
"""

# Formats used for matplotlib figures sent at the end of a cell and on plt.show().
figure_formats = ("png",)
