"""Generated media files for the preprocessing tests: plain functions, one file each.

Images are written with Pillow, audio with soundfile (WAV/FLAC/OGG) or PyAV (MP3, AAC in M4A,
Opus, PCM in Matroska). Content is deterministic (seeded) so failures reproduce.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- images


def textured_rgb(width: int, height: int, seed: int = 0) -> np.ndarray:
    """``uint8 [H, W, 3]``: gradients, a sinusoid and noise, so resampling errors show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = 127.5 + 127.5 * np.sin((x + 2 * y) / 7.0)
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, (height, width, 3))
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def write_image(path: Path, width: int, height: int, mode: str = "RGB", seed: int = 0, **save):
    """Write a textured image converted to ``mode`` (RGB, RGBA, L, LA, P, CMYK, ...)."""
    from PIL import Image

    image = Image.fromarray(textured_rgb(width, height, seed))
    if mode == "RGBA" or mode == "LA":
        alpha = Image.fromarray(textured_rgb(width, height, seed + 1)[..., 0])
        base = image.convert(mode[:-1])
        base.putalpha(alpha)
        image = base
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, **save)
    return path


def write_gray16_png(path: Path, width: int, height: int) -> tuple[Path, np.ndarray]:
    """A 16-bit grayscale PNG spanning the full 0..65535 range; returns the values too."""
    from PIL import Image

    values = np.linspace(0, 65535, width * height).reshape(height, width).astype(np.uint16)
    Image.fromarray(values).save(path)
    return path, values


def write_palette_gif_with_transparency(path: Path, width: int, height: int) -> Path:
    """A palette GIF whose palette index 0 is transparent."""
    from PIL import Image

    image = Image.fromarray(textured_rgb(width, height)).quantize(colors=32)
    image.save(path, transparency=0)
    return path


def write_exif_rotated_jpeg(path: Path, width: int, height: int, orientation: int = 6) -> Path:
    """A JPEG whose stored pixels are ``width x height`` with EXIF Orientation ``orientation``."""
    from PIL import Image

    image = Image.fromarray(textured_rgb(width, height))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, quality=95, exif=exif.tobytes())
    return path


def write_png_with_declared_size(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose IHDR is rewritten to declare ``width x height`` (a bomb header)."""
    from PIL import Image

    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    # Signature (8) + chunk length (4) + b"IHDR" (4): width and height follow, then 5 bytes.
    data[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    data[29:33] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


# --------------------------------------------------------------------------- audio


def tone(duration_s: float, sample_rate_hz: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """``float32 [channels, samples]``: a chirp plus a little noise, different per channel."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate_hz))
    t = np.arange(n) / sample_rate_hz
    rows = []
    for c in range(channels):
        f0 = 220.0 * (c + 1)
        chirp = 0.4 * np.sin(2 * np.pi * (f0 * t + 300.0 * t**2))
        rows.append(chirp + 0.05 * rng.standard_normal(n) + 0.02 * (c + 1))
    return np.stack(rows).astype(np.float32)


def pcm16_tone(duration_s: float, sample_rate_hz: int, channels: int = 1, seed: int = 0):
    """``int16 [channels, samples]`` version of :func:`tone` (exact samples for PCM files)."""
    return np.round(tone(duration_s, sample_rate_hz, channels, seed) * 32767).astype(np.int16)


def write_soundfile(
    path: Path, waveform: np.ndarray, sample_rate_hz: int, subtype: str | None = None
) -> Path:
    """Write ``[C, N]`` samples (float, or int16 written unchanged) with soundfile.

    The format follows the suffix; ``subtype`` as soundfile names it (PCM_16, FLOAT, VORBIS...).
    """
    import soundfile

    soundfile.write(str(path), waveform.T, sample_rate_hz, subtype=subtype)
    return path


def write_pyav_audio(
    path: Path, waveform: np.ndarray, sample_rate_hz: int, codec: str, bit_rate: int | None = None
) -> Path:
    """Encode ``[C, N]`` samples with PyAV (codec libmp3lame, aac, libopus, pcm_s16le, ...).

    ``waveform`` is float in [-1, 1], or int16 (written unchanged by 16-bit PCM codecs).
    """
    import av

    channels = waveform.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=sample_rate_hz, layout=layout)
        if bit_rate:
            stream.bit_rate = bit_rate
        fmt = stream.codec_context.codec.audio_formats[0].name
        chunk = 1024
        for offset in range(0, waveform.shape[1], chunk):
            block = waveform[:, offset : offset + chunk]
            frame = _audio_frame(block, fmt, layout, sample_rate_hz)
            frame.pts = offset
            frame.time_base = Fraction(1, sample_rate_hz)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _audio_frame(block: np.ndarray, fmt: str, layout: str, sample_rate_hz: int):
    """A PyAV AudioFrame in the encoder's sample format from float ``[C, n]``."""
    import av

    planar = fmt.endswith("p")
    if block.dtype == np.int16:  # exact samples: pass through, or scale like libsndfile
        block = block if fmt.startswith("s16") else block.astype(np.float32) / 32768
    if fmt.startswith("s16"):
        values = block if block.dtype == np.int16 else np.round(block * 32767)
        values = np.clip(values, -32768, 32767).astype(np.int16)
    elif fmt.startswith("s32"):
        values = np.clip(np.round(block * 2147483647.0), -(2**31), 2**31 - 1).astype(np.int32)
    else:
        values = block.astype(np.float32)
    if not planar:
        values = values.T.reshape(1, -1)  # interleaved
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(values), format=fmt, layout=layout)
    frame.sample_rate = sample_rate_hz
    return frame


def write_small_video(
    path: Path, waveform: np.ndarray | None = None, sample_rate_hz: int = 44100, frames: int = 5
) -> Path:
    """A tiny MPEG-4 video (64x48, 10 fps) with an AAC soundtrack when ``waveform`` is given."""
    import av

    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = None
        if waveform is not None:
            layout = "mono" if waveform.shape[0] == 1 else "stereo"
            audio = container.add_stream("aac", rate=sample_rate_hz, layout=layout)
        for i in range(frames):
            image = np.full((48, 64, 3), 20 * i, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio is not None:
            fmt = audio.codec_context.codec.audio_formats[0].name
            for offset in range(0, waveform.shape[1], 1024):
                frame = _audio_frame(
                    waveform[:, offset : offset + 1024], fmt, layout, sample_rate_hz
                )
                frame.pts = offset
                frame.time_base = Fraction(1, sample_rate_hz)
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
    return path
