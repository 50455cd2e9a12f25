"""The accessory model's ImageNet ResNet-18 goes through ``bench.weights`` like the metrics' backbones:
``vtondata weights status`` lists torchvision's ``resnet18-f37072fd.pth`` in ``$TORCH_HOME/hub/checkpoints``;
a missing or corrupt file stops the build with an error naming the file and where to put it; a file in the
cache is hash-checked and loaded into both encoders (the mask filter of E_f zero); random init only by the
explicit ``encoder.weights=random``."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch


@pytest.fixture()
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path / "hub" / "checkpoints"


def test_weights_status_lists_the_resnet18_backbone(torch_home, kit):
    r = kit.cli(["weights", "status", "--json"])
    assert r.exit_code == 0, r.output
    row = {x["key"]: x for x in json.loads(r.output)}["resnet18"]
    assert row["file"] == "resnet18-f37072fd.pth" and row["sha256_prefix"] == "f37072fd"
    assert row["path"] == str(torch_home / "resnet18-f37072fd.pth") and row["present"] is False
    assert row["url"] == "https://download.pytorch.org/models/resnet18-f37072fd.pth" and "accessory" in row["used_by"]
    assert "resnet18" in kit.cli(["weights", "status"]).output


def test_the_model_stops_on_a_missing_or_corrupt_file_naming_it(torch_home):
    from bench.harness import registry as reg
    from vtondata.errors import WeightsMissingError

    cfg = reg.resolve_config("accessory", "row1", "strat", "smoke", ["encoder.weights=imagenet", "encoder.width=64"])
    model = reg.get_model("accessory")(cfg)
    with pytest.raises(WeightsMissingError) as e:
        model.build()
    text = str(e.value)
    assert "resnet18-f37072fd.pth" in text and str(torch_home) in text and "encoder.weights=random" in text
    torch_home.mkdir(parents=True)
    (torch_home / "resnet18-f37072fd.pth").write_bytes(b"not the weights")
    with pytest.raises(WeightsMissingError, match="does not match the expected SHA-256 prefix f37072fd"):
        model.build()


def test_a_cached_file_is_hash_checked_and_loaded_into_both_encoders(torch_home, monkeypatch):
    from torchvision.models import resnet18

    import bench.weights as bw
    from bench.models.blocks.acc_nets import KeypointNet

    torch.manual_seed(3)
    state = resnet18(weights=None).state_dict()
    torch_home.mkdir(parents=True)
    tmp = torch_home / "r18.pth"
    torch.save(state, tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    name = f"resnet18-{prefix}.pth"  # a stand-in with a valid hash-suffixed torch hub name
    tmp.rename(torch_home / name)
    monkeypatch.setitem(bw.WEIGHTS, "resnet18", bw.WeightFile("resnet18", name, "test", "hub", "test", "test"))
    net = KeypointNet(4, 12, fg_mode="daf", weights="imagenet", widths=(8, 8, 8, 8), blocks=(1, 1, 1, 1))
    for k in ("layer3.1.conv2.weight", "bn1.running_mean", "layer4.0.downsample.0.weight"):
        assert torch.equal(net.enc_b.state_dict()[k], state[k]) and torch.equal(net.enc_f.state_dict()[k], state[k])
    w = net.enc_f.conv1.weight
    assert torch.equal(w[:, :3], state["conv1.weight"]) and not w[:, 3].any()
    assert net.provenance == {"network": "resnet18", "weights": "imagenet", "file": str(torch_home / name),
                              "sha256": prefix}
    assert KeypointNet(4, 12, weights="random", widths=(8, 8, 8, 8), blocks=(1, 1, 1, 1),
                       enc_width=8).provenance == {"network": "resnet18", "weights": "random"}


def test_the_perceptual_vgg19_and_the_sphereface_files_are_listed_and_resolved_alike(torch_home, kit):
    """The other fixed networks of the models go through the same registry: status lists them where torchvision /
    the SphereFace port put them, a missing file names itself, its folder and the source, a cached one loads."""
    from bench.models.blocks.spg_face import Sphere20a, load_sphereface
    from vtondata.errors import WeightsMissingError

    rows = {x["key"]: x for x in json.loads(kit.cli(["weights", "status", "--json"]).output)}
    assert rows["vgg19"]["file"] == "vgg19-dcbb9e9d.pth" and rows["vgg19"]["sha256_prefix"] == "dcbb9e9d"
    assert rows["vgg19"]["path"] == str(torch_home / "vgg19-dcbb9e9d.pth") and "SAL-VTON" in rows["vgg19"]["used_by"]
    assert rows["sphereface"]["path"] == str(torch_home / "sphere20a_20171020.pth")
    with pytest.raises(WeightsMissingError) as e:
        load_sphereface("sphereface")
    text = str(e.value)
    assert "sphere20a_20171020.pth" in text and str(torch_home) in text and "face_id.weights=random" in text
    assert "sphereface_pytorch" in text
    r = kit.cli(["weights", "fetch", "sphereface"])  # published only inside a 7z archive: placed by hand
    assert r.exit_code != 0 and "no direct download" in r.output and "sphereface_pytorch" in r.output
    torch.manual_seed(0)
    ref = Sphere20a()
    torch_home.mkdir(parents=True)
    torch.save(ref.state_dict(), torch_home / "sphere20a_20171020.pth")
    net, prov = load_sphereface("sphereface")
    assert prov["file"] == str(torch_home / "sphere20a_20171020.pth")
    x = torch.rand(1, 3, 112, 96) * 2 - 1
    assert torch.equal(net(x), ref.eval()(x))
