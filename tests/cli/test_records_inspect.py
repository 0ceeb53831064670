"""`mlimages records inspect --verify`: a corrupted shard is named with its first bad record, exit 1."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlimages import cli
from mlimages.records.schema import encode_example
from mlimages.records.writer import ShardWriter

RECORDS_PER_SHARD = 3


def tiny_jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture()
def records(tmp_path) -> Path:
    """9 multi-label records in 3 shards, with classes.tsv."""
    folder = tmp_path / "val"
    with ShardWriter(folder, "multi", 4, shard_bytes=1 << 30, max_records=RECORDS_PER_SHARD) as writer:
        for i in range(9):
            writer.write(encode_example(tiny_jpeg(i), 12, 16, [i % 4], [1.0]))
        writer.commit()
    (folder / "classes.tsv").write_text("".join(f"{i}\tn{i:08d}\ttag {i}\n" for i in range(4)))
    return folder


def flip_byte_in_record(shard: Path, record: int) -> None:
    """Flip one byte in the middle of the data of record `record` (0-based) of a TFRecord file."""
    data = bytearray(shard.read_bytes())
    offset = 0
    for _ in range(record):
        (length,) = struct.unpack_from("<Q", data, offset)
        offset += 16 + length  # 8-byte length, 4-byte length CRC, data, 4-byte data CRC
    (length,) = struct.unpack_from("<Q", data, offset)
    data[offset + 12 + length // 2] ^= 0x01
    shard.write_bytes(bytes(data))


def test_intact_folder_verifies_and_summarizes(records, capsys):
    assert cli.main(["records", "inspect", str(records), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "verify: OK" in out and "records            9" in out


def test_flipped_byte_names_the_shard_and_first_bad_record(records, capsys):
    shard = sorted(records.glob("*.tfrecord"))[1]
    flip_byte_in_record(shard, record=1)
    assert cli.main(["records", "inspect", str(records), "--verify", "--json"]) == 1
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    expected = rf"{re.escape(str(shard))}: sha256 differs from index; first bad record: 1 \(corrupted record at \d+\)"
    assert re.fullmatch(expected, problem), problem


def test_single_file_verify_and_plain_inspect_name_the_bad_record(records, capsys):
    shard = sorted(records.glob("*.tfrecord"))[2]
    flip_byte_in_record(shard, record=2)
    assert cli.main(["records", "inspect", str(shard), "--verify"]) == 1
    assert f"{shard}: first bad record: 2 (" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # without --verify: one line, not a DataLossError traceback
        cli.main(["records", "inspect", str(records)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {shard}: record 2 is corrupted (") and err.count("\n") == 1


def test_console_script_output_has_no_traceback_and_no_tensorflow_logs(records):
    """The installed command, as a user runs it: exit 1, the report on stdout, nothing on stderr."""
    flip_byte_in_record(sorted(records.glob("*.tfrecord"))[0], record=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "GRPC"))}
    result = subprocess.run([sys.executable, "-m", "mlimages.cli", "records", "inspect", str(records), "--verify"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "first bad record: 0" in result.stdout and "verify: FAILED" in result.stdout
    assert result.stderr == ""
