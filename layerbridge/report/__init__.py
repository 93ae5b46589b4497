"""Rendering, in one place: every table (Markdown / CSV) and plot layerbridge writes or prints.

``evaluation``  one evaluation's results.json -> results.csv / results.md / two plots
``comparison``  a comparison summary -> comparison.md, plots, the study README
``alignment``   the layer-wise alignment probe -> alignment.md / alignment.png
``bench``       a benchmark report -> its Markdown tables

Renderers take the JSON-ready dictionaries the library writes and read nothing else, so a
committed result can be re-rendered without re-running anything.
"""
