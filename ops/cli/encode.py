"""`vidsearch encode PATH...` and `vidsearch encoders export-onnx`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import track

from vidsearch.core.errors import VidsearchError
from vidsearch.ops.cli.context import console, print_json, state

encoders_app = typer.Typer(help="Manage the encoders (ONNX export).")


def encode(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Video files to encode.")],
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object per run on stdout.")] = False,
    save_dir: Annotated[Path | None, typer.Option("--save", help="Write each file's features as NAME.npz here.")] = None,
    asr: Annotated[bool, typer.Option(help="Run speech recognition.")] = True,
    ocr: Annotated[bool, typer.Option(help="Run OCR on keyframes.")] = True,
    backend: Annotated[str | None, typer.Option(help="torch or onnx (default: settings).")] = None,
) -> None:
    """Decode each file, pick keyframes, run ASR, OCR, vision and text encoders; print a summary.
    A bad file is reported with its error and does not stop the others (exit code 1 then)."""
    from vidsearch.encoders.extract import FeatureExtractor, StageTimer

    settings = state(ctx).settings
    enc = settings.encoders.model_copy(update={"asr": asr, "ocr": ocr})
    settings = settings.model_copy(update={"encoders": enc})
    extractor = FeatureExtractor.load(settings, backend)
    results: list[dict[str, Any]] = []
    items = track(paths, description="encoding", console=console) if len(paths) > 1 else paths
    for path in items:
        timer = StageTimer()
        try:
            feats = extractor.extract(path, timer=timer)
        except VidsearchError as exc:
            results.append({"path": str(path), "error": type(exc).__name__, "message": str(exc)})
            continue
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            feats.save(save_dir / f"{feats.video_id}.npz")
        results.append({"path": str(path), **feats.summary(), "stage_ms": {k: round(v, 1) for k, v in timer.ms.items()}})
    if json:
        print_json({"files": results})
    else:
        for r in results:
            if "error" in r:
                console.print(f"[red]{r['path']}[/red]: {r['error']}: {r['message']}")
            else:
                text = " ".join(s["text"] for s in r["transcript"])[:80]
                ocr_text = " | ".join(o["text"] for o in r["ocr"])[:60]
                console.print(f"[green]{r['path']}[/green] {r['keyframes']} keyframes at {r['keyframe_times']}")
                console.print(f"    asr: {text or '-'}    ocr: {ocr_text or '-'}")
    if any("error" in r for r in results):
        raise typer.Exit(1)


@encoders_app.command("export-onnx")
def export_onnx(
    ctx: typer.Context,
    int8: Annotated[bool, typer.Option(help="Also write the int8 text graph.")] = False,
    int8_smooth: Annotated[bool, typer.Option(help="Also write the smoothed int8 text graph (from the shipped calibration).")] = False,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Export the text and vision encoders to ONNX in the cache (needs torch once)."""
    from vidsearch.encoders.onnx.serve import ensure_exported

    text, vision = ensure_exported(state(ctx).settings, text_graph="fp32")
    out = {"text": str(text), "vision": str(vision)}
    if int8:
        out["text_int8"] = str(ensure_exported(state(ctx).settings, text_graph="int8")[0])
    if int8_smooth:
        out["text_int8_smooth"] = str(ensure_exported(state(ctx).settings, text_graph="int8_smooth")[0])
    print_json(out) if json else console.print(out)


@encoders_app.command("calibrate-text")
def calibrate_text(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="A Tux Paint dataset folder (`vidsearch dataset tuxpaint`); only its train split is read.")],
    out: Annotated[Path, typer.Option(help="Where to write the calibration (.npz).")],
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Measure the smoothed int8 text graph's calibration (activation ranges and the MatMuls kept
    float) on a dataset's train split. The package ships one; this rebuilds it."""
    from vidsearch.encoders.onnx.export import calibrate_text as measure
    from vidsearch.encoders.onnx.serve import ensure_exported
    from vidsearch.ops.bench.text_graphs import calibration_texts
    from vidsearch.ops.datasets.format import load_dataset

    settings = state(ctx).settings
    fp32, _ = ensure_exported(settings, text_graph="fp32")
    texts = calibration_texts(load_dataset(data))
    with console.status("calibrating (each MatMul quantised alone: a few minutes)"):
        calibration = measure(fp32, texts, threads=settings.encoders.threads,
                              card={"source": "tuxpaint", "split": "train", "dataset": data.name})
    calibration.save(out)
    report = {"out": str(out), "digest": calibration.digest(), "texts": len(texts), "alpha": calibration.alpha,
              "kept_float": list(calibration.kept)}
    print_json(report) if json else console.print(report)
