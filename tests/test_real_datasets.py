"""Offline tests of the real-dataset loaders on small fabricated folders in the official layouts."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from course_utils import real_datasets as rd
from course_utils.real_datasets import (
    COCO_ANNOTATIONS_2017,
    COCO_VAL2017_IMAGES,
    PENNFUDAN_ARCHIVE,
    ChecksumError,
    DownloadError,
    PennFudanDataset,
    coco_val2017_subset,
    download_file,
    extract_zip,
)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE", str(folder))
    return folder


# ---- Penn-Fudan -------------------------------------------------------------------------------


def make_pennfudan(root: Path, n: int = 2) -> Path:
    """A Penn-Fudan folder with ``n`` 40x30 photos; image i has people in known rectangles."""
    (root / "PNGImages").mkdir(parents=True)
    (root / "PedMasks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        name = f"FudanPed{i + 1:05d}"
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(
            root / "PNGImages" / f"{name}.png"
        )
        mask = np.zeros((30, 40), dtype=np.uint8)
        mask[2:12, 3:8] = 1  # person 1: rows 2..11, columns 3..7 -> box [3, 2, 8, 12]
        if i % 2 == 0:
            mask[10:30, 20:40] = 2  # person 2 touches the right and bottom edges -> [20, 10, 40, 30]
        Image.fromarray(mask).save(root / "PedMasks" / f"{name}_mask.png")
    return root


def test_pennfudan_boxes_from_masks(tmp_path):
    ds = PennFudanDataset(make_pennfudan(tmp_path / "PennFudanPed"), with_masks=True)
    assert len(ds) == 2 and ds.classes == ("background", "person")
    image, target = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 30, 40) and float(image.max()) <= 1.0
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
    assert target["boxes"].tolist() == [[3, 2, 8, 12], [20, 10, 40, 30]]
    assert target["labels"].tolist() == [1, 1] and target["labels"].dtype == torch.int64
    assert target["masks"].shape == (2, 30, 40) and int(target["masks"][0].sum()) == 50
    assert ds[1][1]["boxes"].shape == (1, 4)


def test_pennfudan_with_v2_transforms(tmp_path):
    ds = PennFudanDataset(make_pennfudan(tmp_path / "P"), transforms=v2.RandomHorizontalFlip(p=1.0))
    _, target = ds[0]
    assert target["boxes"].tolist() == [[32, 2, 37, 12], [0, 10, 20, 30]]


def test_pennfudan_missing_mask_names_the_file(tmp_path):
    root = make_pennfudan(tmp_path / "P")
    (root / "PedMasks" / "FudanPed00002_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"FudanPed00002\.png has no mask"):
        PennFudanDataset(root)


def test_pennfudan_mask_without_image(tmp_path):
    root = make_pennfudan(tmp_path / "P")
    (root / "PNGImages" / "FudanPed00001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"FudanPed00001_mask\.png has no image"):
        PennFudanDataset(root)


def test_pennfudan_corrupt_image_and_wrong_mask_size(tmp_path):
    root = make_pennfudan(tmp_path / "P")
    (root / "PNGImages" / "FudanPed00001.png").write_bytes(b"\x89PNG broken")
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(root / "PedMasks" / "FudanPed00002_mask.png")
    ds = PennFudanDataset(root)
    with pytest.raises(ValueError, match=r"cannot read image .*FudanPed00001\.png"):
        ds[0]
    with pytest.raises(ValueError, match=r"FudanPed00002_mask\.png has shape \(10, 10\), expected .*30x40"):
        ds[1]


def test_pennfudan_wrong_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="PNGImages"):
        PennFudanDataset(tmp_path)


def test_pennfudan_offline_download_says_where_to_put_files(cache):
    with pytest.raises(DownloadError) as info:
        PennFudanDataset()
    message = str(info.value)
    assert PENNFUDAN_ARCHIVE.url in message and "by hand" in message
    assert str(cache / "pennfudan" / "PennFudanPed.zip") in message
    assert str(cache / "pennfudan" / "PennFudanPed") in message
    assert not list((cache / "pennfudan").iterdir())  # no partial files left
    with pytest.raises(FileNotFoundError, match="download=True"):
        PennFudanDataset(download=False)


def test_pennfudan_from_archive_placed_by_hand(cache, tmp_path):
    src = make_pennfudan(tmp_path / "src" / "PennFudanPed")
    archive = cache / "pennfudan" / "PennFudanPed.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(src.rglob("*")):
            zf.write(path, path.relative_to(src.parent).as_posix())
    stale = cache / "pennfudan" / ".extracting-old"  # left by an interrupted extraction
    (stale / "PennFudanPed").mkdir(parents=True)
    ds = PennFudanDataset()
    assert len(ds) == 2 and ds.root == cache / "pennfudan" / "PennFudanPed"
    assert not stale.exists()
    assert ds[0][1]["boxes"].shape == (2, 4)


# ---- download and extraction -------------------------------------------------------------------


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    support_range = True
    requests: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        body, status = self.payload, 200
        if rng and self.support_range:
            start = int(rng.split("=")[1].split("-")[0])
            body, status = self.payload[start:], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    payload = bytes(range(256)) * 400
    handler = type("Handler", (_RangeHandler,), {"payload": payload, "requests": []})
    httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/file.bin", handler
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_sha256_and_md5(server, tmp_path):
    url, handler = server
    sha = hashlib.sha256(handler.payload).hexdigest()
    md5 = hashlib.md5(handler.payload).hexdigest()
    path = download_file(url, tmp_path / "f.bin", sha256=sha, md5=md5, progress=False)
    assert path.read_bytes() == handler.payload and not (tmp_path / "f.bin.part").exists()
    assert download_file(url, path, sha256=sha, progress=False) == path  # present: only checked
    assert len(handler.requests) == 1


def test_download_resumes_a_partial_file(server, tmp_path):
    url, handler = server
    (tmp_path / "f.bin.part").write_bytes(handler.payload[:1000])
    download_file(url, tmp_path / "f.bin", sha256=hashlib.sha256(handler.payload).hexdigest(), progress=False)
    assert handler.requests == ["bytes=1000-"]
    assert (tmp_path / "f.bin").read_bytes() == handler.payload


def test_download_restarts_when_server_ignores_range(server, tmp_path):
    url, handler = server
    handler.support_range = False
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 10)
    download_file(url, tmp_path / "f.bin", md5=hashlib.md5(handler.payload).hexdigest(), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == handler.payload


def test_download_checksum_mismatch_deletes_the_download(server, tmp_path):
    url, _ = server
    with pytest.raises(ChecksumError, match=r"f\.bin\.part: sha256 is .*, expected 0+"):
        download_file(url, tmp_path / "f.bin", sha256="0" * 64, progress=False)
    assert not list(tmp_path.iterdir())


def test_file_placed_by_hand_with_wrong_checksum(tmp_path):
    (tmp_path / "val2017.zip").write_bytes(b"not the archive")
    with pytest.raises(ChecksumError, match=r"val2017\.zip: md5 is .*expected 442b8da7"):
        download_file(COCO_VAL2017_IMAGES.url, tmp_path / "val2017.zip", md5=COCO_VAL2017_IMAGES.md5)


def test_offline_download_raises_clear_error(tmp_path):
    with pytest.raises(
        DownloadError, match=r"(?s)could not download http://images\.cocodataset\.org.*by hand"
    ):
        download_file(COCO_ANNOTATIONS_2017.url, tmp_path / "a.zip", progress=False)


def test_checksum_constants_are_well_formed():
    for archive in (COCO_VAL2017_IMAGES, COCO_ANNOTATIONS_2017):
        assert len(archive.md5) == 32 and int(archive.md5, 16) >= 0
    assert PENNFUDAN_ARCHIVE.md5 is None and PENNFUDAN_ARCHIVE.sha256 is None  # unpublished


def test_extract_zip_is_atomic_and_reports_bad_archives(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("top/x.txt", "x")
        zf.writestr("top/sub/y.txt", "y")
        zf.writestr("other.txt", "o")
    extract_zip(archive, {"top": tmp_path / "out" / "top"})
    assert (tmp_path / "out" / "top" / "sub" / "y.txt").read_text() == "y"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["top"]  # no temp folder, no other.txt
    with pytest.raises(ValueError, match="has no"):
        extract_zip(archive, {"missing": tmp_path / "out" / "missing"})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["top"]
    (tmp_path / "bad.zip").write_bytes(b"PK not really")
    with pytest.raises(ValueError, match=r"bad\.zip is not a valid zip"):
        extract_zip(tmp_path / "bad.zip", {"top": tmp_path / "out2" / "top"})
    assert not (tmp_path / "out2" / "top").exists()


# ---- COCO 2017 val subset ----------------------------------------------------------------------


def make_coco(root: Path) -> Path:
    """A COCO-2017-val-like folder: 4 images, categories person (1), car (3), dog (18)."""
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    images = []
    for k, image_id in enumerate([139, 285, 632, 724]):
        name = f"{image_id:012d}.jpg"
        Image.fromarray(np.full((48, 64, 3), 40 * k, dtype=np.uint8)).save(root / "val2017" / name)
        images.append(
            {"id": image_id, "file_name": name, "height": 48, "width": 64, "coco_url": "http://x/" + name}
        )
    anns = [
        (139, 1, [1, 2, 10, 20], 0),
        (139, 18, [30, 5, 20, 20], 0),
        (285, 3, [5, 5, 10, 10], 0),  # car only: not in a person subset
        (632, 1, [50, 30, 20, 20], 0),  # sticks out of the 64x48 image: clipped
        (632, 1, [5, 5, 0, 8], 0),  # zero width: left out
        (724, 1, [0, 0, 64, 48], 1),  # crowd: left out (and 724 then has no person)
    ]
    annotations = [
        {
            "id": i + 1,
            "image_id": im,
            "category_id": c,
            "bbox": b,
            "area": b[2] * b[3],
            "iscrowd": crowd,
            "segmentation": [],
        }
        for i, (im, c, b, crowd) in enumerate(anns)
    ]
    categories = [
        {"id": 1, "name": "person", "supercategory": "person"},
        {"id": 3, "name": "car", "supercategory": "vehicle"},
    ]
    categories.append({"id": 18, "name": "dog", "supercategory": "animal"})
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(coco))
    return root


def test_coco_subset_by_category_and_count(tmp_path):
    root = make_coco(tmp_path / "coco2017")
    with pytest.warns(UserWarning, match="left out 1 crowd and 1 zero-size annotations, clipped 1 boxes"):
        ds = coco_val2017_subset(("person",), max_images=10, root=root)
    assert ds.ids == [139, 632] and len(ds) == 2
    assert ds.classes == ("background", "person")
    image, target = ds[0]
    assert image.shape == (3, 48, 64) and image.dtype == torch.float32
    assert target["boxes"].tolist() == [[1, 2, 11, 22]] and target["labels"].tolist() == [1]
    assert ds[1][1]["boxes"].tolist() == [[50, 30, 64, 48]]
    with pytest.warns(UserWarning):
        small = coco_val2017_subset("person", max_images=1, root=root)
    assert small.ids == [139]


def test_coco_subset_keeps_or_renumbers_category_ids(tmp_path):
    root = make_coco(tmp_path / "coco2017")
    with pytest.warns(UserWarning):
        ds = coco_val2017_subset(("dog", "person"), root=root)
    assert ds[0][1]["labels"].tolist() == [1, 18] and ds.classes[18] == "dog" and ds.classes[2] == "N/A"
    with pytest.warns(UserWarning):
        ds = coco_val2017_subset(("dog", "person"), root=root, contiguous_labels=True)
    assert ds.classes == ("background", "dog", "person")
    assert sorted(ds[0][1]["labels"].tolist()) == [1, 2]


def test_coco_subset_bad_requests(tmp_path):
    root = make_coco(tmp_path / "coco2017")
    with pytest.raises(ValueError, match=r"unknown COCO categories \['unicorn'\]"):
        coco_val2017_subset(("unicorn",), root=root)
    with pytest.raises(ValueError, match="image_source"):
        coco_val2017_subset(root=root, image_source="torrent")
    (root / "val2017" / "000000000139.jpg").unlink()
    with (
        pytest.warns(UserWarning),
        pytest.raises(FileNotFoundError, match=r"lacks images .*000000000139\.jpg"),
    ):
        coco_val2017_subset(("person",), root=root, download=False)
    with pytest.warns(UserWarning), pytest.raises(DownloadError, match=r"(?s)000000000139\.jpg.*by hand"):
        coco_val2017_subset(("person",), root=root, progress=False)


def test_coco_offline_without_cache(cache):
    with pytest.raises(DownloadError) as info:
        coco_val2017_subset(progress=False)
    message = str(info.value)
    assert COCO_ANNOTATIONS_2017.url in message
    assert str(cache / "coco2017" / "annotations" / "instances_val2017.json") in message
    with pytest.raises(FileNotFoundError, match="download=True"):
        rd.coco_val2017_root(download=False)
