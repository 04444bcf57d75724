"""CI-sized end-to-end run of the balanced model: dataset from the Debian package, training, ONNX
export, evaluation from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidsearch.core.settings import Settings
from vidsearch.ops.cli.main import app
from vidsearch.ops.datasets.features import dataset_features
from vidsearch.ops.datasets.format import load_dataset
from vidsearch.ops.modeling.training import train_model

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tux")
    result = CliRunner().invoke(app, ["dataset", "tuxpaint", "--out", str(out), "--limit", "40", "--json"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow  # ~100 s on a cold cache: renders Tux Paint stamps and extracts features
def test_dataset_build_is_complete_and_cached(small_dataset: Path) -> None:
    ds = load_dataset(small_dataset)
    assert len(ds.videos) == 40
    assert {v.subset for v in ds.videos} == {"text_rich", "text_poor"}
    assert all(ds.media_path(v).stat().st_size > 1000 for v in ds.videos)
    assert all((small_dataset / "features" / f"{v.video_id}.npz").exists() for v in ds.videos)
    before = {p: p.stat().st_mtime_ns for p in (small_dataset / "media").iterdir()}
    result = CliRunner().invoke(app, ["dataset", "tuxpaint", "--out", str(small_dataset), "--limit", "40", "--json"])
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in (small_dataset / "media").iterdir()} == before  # cached, not re-rendered


def test_train_loss_goes_down_and_onnx_matches_torch(small_dataset: Path, settings: Settings, tmp_path: Path) -> None:
    ds = load_dataset(small_dataset)
    feats = dataset_features(ds, settings)
    losses: list[float] = []
    cards = train_model(ds, feats, settings, tmp_path / "model", seed=0, variants=("balanced",),
                        on_epoch=lambda _v, row: losses.append(row["loss"]), overrides={"epochs": 12, "patience": 50})
    assert len(losses) == 12
    assert losses[-1] < 0.8 * losses[0], losses
    card = cards["balanced"]
    assert min(card["onnx_parity_min_cos"].values()) >= 0.999, card["onnx_parity_min_cos"]
    assert card["version"].startswith("mbvr-balanced-") and card["data"]["hash"] == ds.fingerprint()
    assert card["encoder_versions"]["vision"].startswith("efficientnet")
    on_disk = json.loads((tmp_path / "model" / "card.json").read_text())
    assert on_disk["version"] == card["version"]
    assert (tmp_path / "model" / "checkpoints" / "best.pt").exists()


def test_cli_train_and_eval_report_every_config(small_dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--data", str(small_dataset), "--out", str(tmp_path / "m"), "--epochs", "5", "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["eval", "--data", str(small_dataset), "--model", str(tmp_path / "m"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert set(report["metrics"]) == {"text_only", "naive_fusion", "bridge_imagenet", "fusion_plain", "balanced", "balanced_ncl"}
    for per in report["metrics"].values():
        assert set(per) == {"all", "text_rich", "text_poor"}
        for m in per.values():
            assert {"r1", "r5", "r10", "mdr", "rsum"} <= set(m)
            assert 0 <= m["r1"] <= m["r5"] <= m["r10"] <= 100
    # a camera-style title carries nothing: text-only retrieval cannot beat chance on text_poor by much
    assert report["metrics"]["text_only"]["text_poor"]["r1"] <= report["metrics"]["naive_fusion"]["text_poor"]["r1"]
    assert set(report["r_vt"]) == set(report["metrics"])


def test_eval_on_a_malformed_folder_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "videos.jsonl").write_text('{"video_id": "a", "path": "a.mp4"}\n')
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path), "--json"])
    assert result.exit_code == 2
    assert "queries.jsonl: missing" in result.output


@pytest.mark.slow  # ~90 s: two short trainings and two evaluations
def test_models_trained_on_different_bridges_are_compared_in_one_eval_run(small_dataset: Path, tmp_path: Path) -> None:
    from vidsearch.encoders.bridges import SHIPPED_HEAD

    runner = CliRunner()
    joined = {"VIDSEARCH_ENCODERS__BRIDGE": "joined"}
    for name, env in (("labels", {}), ("joined", joined)):
        result = runner.invoke(app, ["train", "--data", str(small_dataset), "--out", str(tmp_path / name), "--epochs", "3",
                                     "--no-ablation", "--json"], env=env)
        assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "joined" / "card.json").read_text())
    assert card["bridge"]["kind"] == "joined" and card["bridge"]["version"].startswith("joined")
    assert (tmp_path / "joined" / card["bridge"]["head"]).exists(), "the model folder carries the head it learned from"
    assert json.loads((tmp_path / "labels" / "card.json").read_text())["bridge"]["kind"] == "imagenet"

    result = runner.invoke(app, ["eval", "--data", str(small_dataset), "--model", str(tmp_path / "labels"),
                                 "--also-model", str(tmp_path / "joined"), "--bridge-head", str(SHIPPED_HEAD), "--json"])
    assert result.exit_code == 0, result.output
    both = json.loads(result.stdout[result.stdout.index("{"):])["metrics"]
    assert {"balanced", "balanced@joined", "balanced_ncl@joined", "bridge_pretrained", "bridge_joined"} <= set(both)
    # The joined model, scored in a run whose records carry the label bridge, gets exactly what it
    # gets in a run extracted on the joined bridge: it is re-bridged, not fed the wrong inputs.
    result = runner.invoke(app, ["eval", "--data", str(small_dataset), "--model", str(tmp_path / "joined"), "--json"], env=joined)
    assert result.exit_code == 0, result.output
    alone = json.loads(result.stdout[result.stdout.index("{"):])["metrics"]
    for subset, m in alone["balanced"].items():
        assert both["balanced@joined"][subset] == pytest.approx(m, abs=1e-6), subset
    assert both["bridge_joined"] != both["bridge_imagenet"]


def test_prior_weight_pulls_the_model_to_the_default_fusion_and_the_cli_writes_the_chosen_model(
        small_dataset: Path, settings: Settings, tmp_path: Path) -> None:
    from vidsearch.encoders.balanced.serve import BalancedModel
    from vidsearch.encoders.text import load_text_encoder
    from vidsearch.ops.modeling.evaluation import model_configs
    from vidsearch.ops.modeling.prior_weight import derive, train_queries
    from vidsearch.ops.modeling.splits import make_split

    ds = load_dataset(small_dataset)
    feats = dataset_features(ds, settings)
    trained = tmp_path / "model"
    cards = train_model(ds, feats, settings, trained, seed=0, variants=("balanced",), overrides={"epochs": 4})
    text = load_text_encoder(settings.encoders.text_model, settings.encoders.threads, settings.encoders.batch_size)

    # weight 1: every output is the default fusion's, so the trained row ranks exactly as naive fusion
    queries = train_queries(ds, feats, text)
    versions = derive(trained, 1.0, tmp_path / "w100", queries)
    assert versions == {"balanced": cards["balanced"]["version"] + "-prior100"}
    split, ids = make_split(ds, "val", feats, text)
    val_feats = [feats[i] for i in ids]
    pulled = model_configs(tmp_path / "w100")
    naive = pulled["naive_fusion"](split, val_feats).scores
    assert np.allclose(pulled["balanced"](split, val_feats).scores, naive, atol=1e-5)
    towers = model_configs(trained)["balanced"](split, val_feats).scores
    assert not np.allclose(towers, naive, atol=1e-3)  # the towers did learn something of their own

    # weight 0.5: a new version whose query vectors lie between the towers' and the raw query's
    derive(trained, 0.5, tmp_path / "w050", queries)
    half, base = BalancedModel.load(tmp_path / "w050"), BalancedModel.load(trained)
    assert half.prior_weight == 0.5 and half.version.endswith("-prior050") and base.prior_weight == 0.0
    q = text.encode(["a red apple"])
    mixed, tower = half.embed_query_vectors(q)[0], base.embed_query_vectors(q)[0]
    raw = q[0] / np.linalg.norm(q[0])
    assert float(mixed @ raw) > float(tower @ raw) and float(mixed @ tower) > float(raw @ tower)
    assert np.load(tmp_path / "w050" / "ncl_bank.npy").shape == np.load(trained / "ncl_bank.npy").shape

    result = CliRunner().invoke(app, ["prior-weight", "--model", str(trained), "--data", str(small_dataset), "--ood-data",
                                      str(small_dataset), "--weights", "0,1", "--out", str(tmp_path / "chosen"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert [r["weight"] for r in out["rows"]] == [0.0, 1.0] and out["chosen"] in (0.0, 1.0)
    assert all(v == 0 for v in out["rows"][1]["ood"].values())  # weight 1 is naive fusion itself
    chosen = BalancedModel.load(tmp_path / "chosen")
    assert chosen.prior_weight == out["chosen"] and chosen.version == out["versions"]["balanced"]
    result = CliRunner().invoke(app, ["prior-weight", "--model", str(trained), "--data", str(small_dataset), "--ood-data",
                                      str(small_dataset), "--weights", "0,2", "--out", str(tmp_path / "bad")])
    assert result.exit_code == 2 and not (tmp_path / "bad").exists()
