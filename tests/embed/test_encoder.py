"""The location encoder (spherical harmonics + ridge), the ridge/CV helpers, and the
downstream evaluation of the embedding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from updm_dask.cli import main
from updm_dask.embed import evaluate_embedding, fit_encoder, load_encoder
from updm_dask.embed._harmonics import real_sph_harm
from updm_dask.embed._kernel import impute_missing
from updm_dask.embed._ridge import ridge_cv, ridge_fit
from updm_dask.embed.encoder import fit_location_encoder
from updm_dask.embed.evaluate import spatial_split
from updm_dask.embed.layer import cube_vectors
from updm_dask.embed.synthetic import make_synthetic_cube
from updm_dask.errors import QueryError
from updm_dask.geo.points import grid_lonlat

PERIOD = "1972-2024"


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return make_synthetic_cube(tmp_path_factory.mktemp("enc") / "syn")


@pytest.fixture(scope="module")
def pixels(syn):
    """Lon/lat of every pixel and its standardised embedding (dims last)."""
    g = syn.cube.grid
    gx, gy = np.meshgrid(g.x, g.y)
    lon, lat = grid_lonlat(g, gx, gy)
    z, _, stats = cube_vectors(syn.cube, PERIOD)
    return lon, lat, np.moveaxis(z.values, 0, -1), stats


@pytest.fixture(scope="module")
def encoder(pixels):
    """Fitted on every other pixel in both directions."""
    lon, lat, z, stats = pixels
    return fit_location_encoder(
        lon[::2, ::2].ravel(),
        lat[::2, ::2].ravel(),
        z[::2, ::2].reshape(-1, z.shape[-1]),
        names=stats.names,
        degree=10,
        stats=stats,
    )


# --------------------------------------------------------------------------------------
# Spherical harmonics
# --------------------------------------------------------------------------------------


def test_real_spherical_harmonics_hand_worked_and_orthonormal():
    theta = np.array([0.3, 1.2, 2.5])
    phi = np.array([0.1, 2.0, 5.0])
    y = real_sph_harm(theta, phi, 1)
    c = np.sqrt(3 / (4 * np.pi))
    np.testing.assert_allclose(y[:, 0], 1 / (2 * np.sqrt(np.pi)))
    np.testing.assert_allclose(y[:, 1], c * np.sin(theta) * np.sin(phi))  # l=1, m=-1
    np.testing.assert_allclose(y[:, 2], c * np.cos(theta))  # l=1, m=0
    np.testing.assert_allclose(y[:, 3], c * np.sin(theta) * np.cos(phi))  # l=1, m=1
    # Gauss-Legendre in cos(theta) x uniform phi integrates these products exactly
    deg = 5
    x, w = np.polynomial.legendre.leggauss(deg + 2)
    ph = np.linspace(0, 2 * np.pi, 2 * deg + 4, endpoint=False)
    tt, pp = np.meshgrid(np.arccos(x), ph, indexing="ij")
    ww = np.repeat(w, ph.size) * (2 * np.pi / ph.size)
    b = real_sph_harm(tt.ravel(), pp.ravel(), deg)
    assert b.shape == (tt.size, (deg + 1) ** 2)
    np.testing.assert_allclose(b.T @ (b * ww[:, None]), np.eye((deg + 1) ** 2), atol=1e-12)
    with pytest.raises(QueryError, match="degree"):
        real_sph_harm(theta, phi, -1)


def test_real_spherical_harmonics_match_scipy_to_high_degree():
    """Independent reference: scipy's complex harmonics (Condon-Shortley phase removed)."""
    from scipy.special import sph_harm_y

    rng = np.random.default_rng(5)
    th = np.concatenate([[0.0, np.pi, 1e-9], rng.random(300) * np.pi])
    ph = np.concatenate([[0.0, 1.0, -2.0], rng.random(300) * 2 * np.pi - np.pi])
    deg = 30
    b = real_sph_harm(th, ph, deg)
    for d in range(deg + 1):
        for m in range(-d, d + 1):
            y = sph_harm_y(d, abs(m), th, np.mod(ph, 2 * np.pi))
            ref = y.real if m == 0 else np.sqrt(2) * (-1) ** m * (y.real if m > 0 else y.imag)
            np.testing.assert_allclose(b[:, d * d + d + m], ref, atol=1e-11, err_msg=f"{d},{m}")


# --------------------------------------------------------------------------------------
# Ridge
# --------------------------------------------------------------------------------------


def test_ridge_matches_the_normal_equations():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4))
    y = x @ rng.normal(size=(4, 2)) + 3.0 + rng.normal(scale=0.1, size=(50, 2))
    fit = ridge_fit(x, y, 2.5)
    xc, yc = x - x.mean(0), y - y.mean(0)
    w = np.linalg.solve(xc.T @ xc + 2.5 * np.eye(4), xc.T @ yc)
    np.testing.assert_allclose(fit.weights, w, rtol=1e-10)
    np.testing.assert_allclose(fit.predict(x[:3]), xc[:3] @ w + y.mean(0), rtol=1e-10)
    with pytest.raises(QueryError, match="ridge"):
        ridge_fit(x, y[:10], 1.0)


def test_blocked_cv_chooses_little_penalty_for_signal_and_much_for_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5))
    groups = np.arange(200) // 20
    alphas = np.logspace(-4, 4, 9)
    signal, _ = ridge_cv(x, x @ np.arange(1.0, 6.0)[:, None], groups, alphas)
    noise, cv = ridge_cv(x, rng.normal(size=(200, 1)), groups, alphas)
    assert signal.alpha <= 1e-2
    assert noise.alpha >= 1e2
    assert len(cv["cv_mse"]) == 9
    with pytest.raises(QueryError, match="groups"):
        ridge_cv(x, x[:, :1], groups[:5])


# --------------------------------------------------------------------------------------
# The encoder
# --------------------------------------------------------------------------------------


def test_encoder_reproduces_training_points_and_interpolates(pixels, encoder):
    lon, lat, z, _ = pixels
    zi = impute_missing(z)
    train = encoder.encode(lon[::2, ::2], lat[::2, ::2])
    np.testing.assert_allclose(
        train.vectors, zi[::2, ::2].reshape(-1, z.shape[-1]), atol=1e-3, rtol=0
    )
    assert not train.far.any() and train.distance_m.max() < 1e-3
    assert encoder.spacing_m == pytest.approx(60.0, rel=0.01)  # every other 30 m pixel
    assert encoder.far_threshold_m == pytest.approx(180.0, rel=0.01)
    # held-out pixels between the training ones: errors well under the vectors' spread
    held = np.zeros(lon.shape, bool)
    held[1::2, 1::2] = True
    out = encoder.encode(lon[held], lat[held])
    assert not out.far.any()
    err_held = np.sqrt(((out.vectors - zi[held]) ** 2).mean(axis=1))
    spread = np.sqrt((zi**2).mean(axis=-1))
    assert err_held.mean() < 0.7 * spread.mean()


def test_encoder_held_out_pixels_keep_their_history(syn, pixels, encoder):
    lon, lat, z, _ = pixels
    zi = impute_missing(z)
    means = np.stack([zi[syn.history == h].mean(axis=0) for h in range(len(syn.names))])
    rows, cols = np.nonzero(np.ones(lon.shape, bool))
    interior = (rows % 8 >= 2) & (rows % 8 <= 5) & (cols % 8 >= 2) & (cols % 8 <= 5)
    held = interior & ((rows % 2 == 1) | (cols % 2 == 1))  # never a training pixel
    r, c = rows[held], cols[held]
    out = encoder.encode(lon[r, c], lat[r, c])
    nearest = np.argmin(((out.vectors[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == syn.history[r, c]).mean() >= 0.95


def test_encoder_degrades_gracefully_away_from_data(pixels, encoder):
    """Walking west from the cube's corner: the distance grows, the flag turns on past the
    threshold, the vector moves continuously to the training mean and stays there."""
    lon, lat, z, _ = pixels
    steps = np.linspace(0.0, 0.05, 201)  # up to ~4.6 km west
    out = encoder.encode(lon[0, 0] - steps, np.full(steps.size, lat[0, 0]))
    assert np.isfinite(out.vectors).all()
    assert (np.diff(out.distance_m) > 0).all()
    np.testing.assert_array_equal(out.far, out.distance_m > encoder.far_threshold_m)
    assert not out.far[0] and out.far[-1]
    to_mean = np.linalg.norm(out.vectors - encoder.intercept, axis=1)
    assert to_mean[-1] < 1e-6  # far beyond: the training area's mean embedding
    gone = out.distance_m > encoder.far_threshold_m + encoder.fade_m
    assert gone.any() and (to_mean[gone] < 1e-6).all()
    # continuity: no jump between neighbouring steps larger than a training vector's norm
    assert np.abs(np.diff(out.vectors, axis=0)).max() < np.abs(impute_missing(z)).max()
    bound = np.linalg.norm(impute_missing(z), axis=-1).max()
    assert to_mean.max() <= 2 * bound


def test_encoder_save_load_and_bad_files(encoder, tmp_path, pixels):
    lon, lat, _, stats = pixels
    path = encoder.save(tmp_path / "enc")
    assert path.suffix == ".npz"
    back = load_encoder(path)
    pts = (lon[3:9, 5], lat[3:9, 5])
    a, b = encoder.encode(*pts), back.encode(*pts)
    np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a.far, b.far)
    assert back.names == stats.names and back.stats.period == stats.period
    np.testing.assert_allclose(back.stats.mean, stats.mean, equal_nan=True)

    with pytest.raises(QueryError, match="does not exist"):
        load_encoder(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(QueryError, match="not a location-encoder file"):
        load_encoder(tmp_path / "junk.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["embedding_version"] = 999
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(QueryError, match="version 999"):
        load_encoder(tmp_path / "old.npz")


def test_encoder_bad_arguments(pixels):
    lon, lat, z, _ = pixels
    x, y, v = lon[:4, 0], lat[:4, 0], z[:4, 0]
    with pytest.raises(QueryError, match="frame"):
        fit_location_encoder(x, y, v, frame="flat")
    with pytest.raises(QueryError, match="degree"):
        fit_location_encoder(x, y, v, degree=-2)
    with pytest.raises(QueryError, match="vectors"):
        fit_location_encoder(x, y, v[:3])
    with pytest.raises(QueryError, match="lat"):
        fit_location_encoder(x, y + 100.0, v)
    with pytest.raises(QueryError, match="coincide"):
        fit_location_encoder(np.full(4, x[0]), np.full(4, y[0]), v)


@pytest.mark.slow
def test_global_frame_and_fit_from_cube_and_cli(syn, tmp_path, capsys):
    enc = fit_encoder(syn.cube, PERIOD, step=4, degree=4, frame="global")
    assert enc.frame == "global" and enc.weights.shape == (25, 62)
    out = enc.encode(0.0, 0.0)  # the other side of the world
    assert out.far[0] and np.allclose(out.vectors[0], enc.intercept, atol=1e-6)
    path = tmp_path / "e.npz"
    loc = syn.cube.location
    assert main(["embed", loc, "--fit-encoder", str(path), "--degree", "4", "--step", "4"]) == 0
    capsys.readouterr()
    g = syn.cube.grid
    lon, lat = grid_lonlat(g, g.x[8], g.y[8])
    assert (
        main(["embed", "--encoder", str(path), "--lon", str(lon), "--lat", str(lat), "--json"]) == 0
    )
    rec = json.loads(capsys.readouterr().out)
    assert rec["far_from_training_data"] is False and len(rec["vector"]) == 62
    assert main(["embed", "--encoder", str(path)]) == 2
    capsys.readouterr()
    # a points file: one CSV row per point, the vector of the single-point answer
    pts = tmp_path / "p.csv"
    pts.write_text(f"name,longitude,latitude\nhere,{lon},{lat}\nfar,0,0\n")
    assert main(["embed", "--encoder", str(path), "--points", str(pts)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",")[:5] == ["id", "lon", "lat", "distance_m", "far"]
    here, far = lines[1].split(","), lines[2].split(",")
    assert here[0] == "here" and here[4] == "False" and far[4] == "True"
    np.testing.assert_allclose([float(v) for v in here[5:]], rec["vector"], rtol=1e-5, atol=1e-5)
    md = tmp_path / "eval.md"
    assert main(["embed", loc, "--evaluate", "--degree", "4", "--output", str(md)]) == 0
    rows = [line for line in md.read_text().splitlines() if line.startswith("| embedding")]
    assert rows[0].startswith("| embedding 1972-2009 | 42 |")


@pytest.mark.slow
def test_cli_evaluates_the_synthetic_cube(tmp_path, capsys):
    """``--synthetic DIR`` builds the synthetic test cube and evaluates it."""
    where = tmp_path / "s"
    args = ["embed", "--evaluate", "--synthetic", str(where), "--block", "8", "--degree", "2"]
    assert main([*args, "--step", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"### {where}") and "8-px blocks" in out
    assert "| embedding 1972-2009 | 42 |" in out
    assert main(["embed", str(where), "--synthetic", str(tmp_path / "t")]) == 2
    assert "--synthetic goes with --evaluate" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


def test_spatial_split_is_separated():
    train, test, bid = spatial_split((40, 40), 8, 0.3, 2, seed=0)
    assert not (train & test).any() and test.any() and train.any()
    from scipy import ndimage

    assert ndimage.distance_transform_edt(~train)[test].min() > 2
    assert len(np.unique(bid)) == 25
    with pytest.raises(QueryError, match="spatial split"):
        spatial_split((40, 40), 8, 1.5, 2, seed=0)


def test_embedding_beats_position_where_it_must(syn):
    """Why the embedding must win here, and position must fail.

    The synthetic cube deals its six histories to 8-pixel blocks by a seeded shuffle, so a
    block's history is unrelated to where it lies. The split uses the same 8-pixel blocks:
    every test pixel lies in a block never seen in training, and 2 pixels from any training
    pixel. Any function of position alone (linear lon/lat, the SH basis, the encoder) thus
    carries no information about a test block's history, and can at best predict the
    training average: R^2 near or below 0. Every history changes before 2000 and keeps its
    class after, so the 2010-2024 class fractions equal the 2000s fractions inside the
    1972-2009 embedding, which a linear map reads off: R^2 near 1 (clouds aside).
    """
    table = evaluate_embedding(syn.cube, block_px=8, degree=6, seed=0)
    emb = table.row("embedding 1972-2009")
    assert table.n_test > 100 and table.n_train > 1000
    for target in ("frac_water", "frac_vegetation", "frac_urban"):
        assert emb.r2[target] > 0.95
        for name in ("lon/lat (linear)", "lon/lat (SH"):  # raw position
            assert table.row(name).r2[target] < 0.3
        for name in ("lon/lat (linear)", "lon/lat (SH", "encoder"):  # anything positional
            assert emb.r2[target] - table.row(name).r2[target] > 0.5
    assert emb.accuracy > 0.95
    assert table.row("lon/lat (linear)").accuracy < 0.7
    md = table.to_markdown()
    assert md.count("\n|") == 2 + len(table.rows)
    with pytest.raises(QueryError, match="must start after"):
        evaluate_embedding(syn.cube, feature_period="1972-2012", target_period="2010-2024")
