"""Write examples/tutorial.ipynb: the Python side of docs/tutorial.md, as a notebook.

The notebook is committed without outputs; CI runs it (tests/docs/test_notebook.py). Edit
the cells here and run ``python examples/make_tutorial_notebook.py`` to rewrite it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "tutorial.ipynb"

CELLS = [
    (
        "markdown",
        "# updm_dask tutorial: the demo cube from Python\n\n"
        "The Python side of the documentation's tutorial (`docs/tutorial.md`): a point's\n"
        "history, area shares, trends, change, exports and embeddings, on the demo cube.\n"
        "The first cell makes the demo (12 synthetic scenes of 64 x 64 pixels, 1974-2023)\n"
        "in `updm-demo/` next to the notebook, unless it is there already.",
    ),
    (
        "code",
        "from pathlib import Path\n\n"
        "from updm_dask.demo.run import run_demo\n\n"
        'CUBE = "updm-demo/cube.icechunk"\n'
        "if not Path(CUBE).exists():\n"
        '    print(run_demo("updm-demo", n_scenes=12, size=64).text)',
    ),
    ("markdown", "## What the cube holds"),
    (
        "code",
        "from updm_dask.cube import cube_info, format_cube_info, open_cube\n\n"
        "print(format_cube_info(cube_info(CUBE)))\n"
        "cube = open_cube(CUBE).to_xarray()  # a georeferenced, lazy xarray Dataset\n"
        "cube",
    ),
    ("markdown", "## A point's history"),
    (
        "code",
        "from updm_dask.query import plot_point_series, point_series\n\n"
        "LON, LAT = 135.51, 34.72\n"
        "series = point_series(CUBE, lon=LON, lat=LAT)\n"
        'plot_point_series(series.scenes, "point-series.png", yearly=series.yearly)\n'
        'series.yearly[["year", "yearly_land_cover", "yearly_mviupd_median"]]',
    ),
    ("markdown", "## Area shares"),
    (
        "code",
        "from updm_dask.query import Selection, area_statistics, plot_class_fractions\n\n"
        "box = Selection(CUBE, bbox=(135.503, 34.712, 135.522, 34.727))\n"
        "shares = area_statistics(box)\n"
        'plot_class_fractions(shares, "area-fractions.png")\n'
        'shares[["year", "water_fraction", "vegetation_fraction", "non_vegetated_fraction"]]',
    ),
    ("markdown", "## Trends"),
    (
        "code",
        "from updm_dask.query import mviupd_trend, plot_trend_map, trend_summary\n\n"
        "trend = mviupd_trend(CUBE)\n"
        'plot_trend_map(trend, "trend.png")\n'
        "trend_summary(CUBE)",
    ),
    ("markdown", "## Change"),
    (
        "code",
        "from updm_dask.query import change_table, first_change, transition_matrix\n\n"
        "print(transition_matrix(CUBE, (1974, 1985), (2011, 2023)).format())\n"
        "change_table(first_change(CUBE))  # first year of each persistent change",
    ),
    ("markdown", "## Exports"),
    (
        "code",
        "from updm_dask.query import export_map, export_zarr\n\n"
        'export_map(CUBE, "land_cover", "lc2023.tif", year=2023)\n'
        'export_map(CUBE, "land_cover", "lc2023.png", year=2023)\n'
        'export_zarr(CUBE, "snapshot.zarr", overwrite=True)',
    ),
    ("markdown", "## Embeddings"),
    (
        "code",
        "from updm_dask.embed import point_embedding, similar_places\n\n"
        "place = point_embedding(CUBE, LON, LAT, radius=90)\n"
        "print(similar_places(LON, LAT, CUBE, k=3).format())\n"
        "place",
    ),
]


def build() -> nbformat.NotebookNode:
    """The notebook of :data:`CELLS`, without outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        for kind, src in CELLS
    ]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: rewriting gives the same file
    return nb


if __name__ == "__main__":
    nbformat.write(build(), NOTEBOOK)
    print(f"wrote {NOTEBOOK}")
