"""The critic: teacher labelling, critic training data and offline annotation of generator data.

Imports `selfrag`, never the reverse. (Filled in by the critic issue; the package exists so the layout is stable.)
"""
