"""A generated media collection with one or more files of every modality, plus broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from media import tone, write_image, write_soundfile
from media_video import write_video
from PIL import Image

#: relative path -> expected row modalities of the files a clean ingest must hold.
VALID: dict[str, set[str]] = {
    "photos/beach.png": {"image"},
    "photos/Trip 2024/it's.jpg": {"image"},
    "sounds/rain.wav": {"audio"},
    "sounds/long.flac": {"audio"},
    "clips/street.mp4": {"video", "audio"},
    "clips/silent.mp4": {"video"},
    "notes/todo.txt": {"text"},
    "notes/readme.md": {"text"},
    "depth/room.png": {"depth"},
    "scans/desk.depth.npy": {"depth"},
    "thermal/person.png": {"thermal"},
    "imu/walk.csv": {"imu"},
    "sensors/run.imu.npy": {"imu"},
}
BROKEN = ["photos/corrupt.jpg", "sounds/empty.wav", "clips/truncated.mp4", "imu/bad.csv"]
SKIPPED = [".hidden.png", "photos/.thumbs/x.png", "docs/manual.pdf"]


def build_collection(root: Path) -> Path:
    """Write the collection under ``root``; returns ``root``."""
    for rel in [*VALID, *BROKEN, *SKIPPED]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    write_image(root / "photos/beach.png", 96, 64, seed=1)
    write_image(root / "photos/Trip 2024/it's.jpg", 64, 80, seed=2)
    write_soundfile(root / "sounds/rain.wav", tone(2.5, 16000, seed=3), 16000)
    write_soundfile(root / "sounds/long.flac", tone(7.0, 22050, channels=2, seed=4), 22050)
    write_video(root / "clips/street.mp4", num_frames=75, width=96, height=64, with_audio=True)
    write_video(root / "clips/silent.mp4", num_frames=40, width=64, height=96, pattern="texture")
    (root / "notes/todo.txt").write_text("buy milk\nwalk the dog in the rain\n", encoding="utf-8")
    (root / "notes/readme.md").write_text("# Notes\n" + "words " * 200, encoding="utf-8")
    depth_mm = (np.linspace(500, 4000, 80 * 60).reshape(60, 80)).astype(np.uint16)
    Image.fromarray(depth_mm).save(root / "depth/room.png")
    np.save(root / "scans/desk.depth.npy", np.full((48, 64), 1.5, dtype=np.float32))
    Image.fromarray((np.arange(64 * 48) % 251).reshape(48, 64).astype(np.uint8)).save(
        root / "thermal/person.png"
    )
    rng = np.random.default_rng(5)
    np.savetxt(root / "imu/walk.csv", rng.normal(size=(1000, 6)), delimiter=",",
               header="ax,ay,az,gx,gy,gz", comments="")  # fmt: skip
    np.save(root / "sensors/run.imu.npy", rng.normal(size=(6, 2400)).astype(np.float32))
    (root / "photos/corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    (root / "sounds/empty.wav").write_bytes(b"")
    full = (root / "clips/street.mp4").read_bytes()
    (root / "clips/truncated.mp4").write_bytes(full[: len(full) // 3])
    (root / "imu/bad.csv").write_text("ax,ay,az,gx,gy,gz\n1,2,3,nan,5,6\n1,2,3,4,5,6\n")
    write_image(root / ".hidden.png", 8, 8)
    write_image(root / "photos/.thumbs/x.png", 8, 8)
    (root / "docs/manual.pdf").write_bytes(b"%PDF-1.4")
    return root
