"""The annotation server: only the session's clips can be read, answers are saved atomically, a restart resumes."""

from __future__ import annotations

import base64
import http.client
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eventcount.annotate import AnnotationServer, open_annotation
from eventcount.annotate.server import byte_range
from eventcount.annotate.session import MARKER
from eventcount.annotations import read_events
from eventcount.errors import EventcountError
from eventcount.labels import read_count_table
from eventcount.prepare import check_count_table

RATE = 8000


def _write_wav(path: Path, seconds: float, seed: int = 0) -> np.ndarray:
    samples = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * RATE)).astype(np.float32)
    sf.write(path, samples, RATE, subtype="PCM_16")
    return samples


@pytest.fixture
def recordings(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "rec"
    folder.mkdir()
    _write_wav(folder / "a.wav", 5.0)   # clips 0-2, 2-4, 4-5
    _write_wav(folder / "b.wav", 2.0, seed=1)  # clip 0-2
    (folder / "walk.csv").write_text("time_s,x,y\n" + "".join(f"{t / 50:.2f},{np.sin(t / 5):.4f},{t % 7}\n"
                                                              for t in range(150)))  # 3 s at 50 Hz
    _write_wav(tmp_path / "secret.wav", 1.0, seed=2)  # not given: must stay unreachable
    return [folder / "a.wav", folder / "b.wav", folder / "walk.csv"]


class Client:
    """Raw HTTP requests (the target is sent exactly as given, `..` and all)."""

    def __init__(self, server: AnnotationServer) -> None:
        self.host, self.port = server.server_address[:2]

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if body is not None:
            sent.setdefault("Content-Type", "application/json")
            sent["Content-Length"] = str(len(body))
        for name, value in sent.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, data, dict(response.getheaders())

    def json(self, target: str) -> dict:
        status, data, _ = self.request("GET", target)
        assert status == 200, data
        return json.loads(data)

    def answer(self, index: int, counts: list[int], taps: list | None = None) -> tuple[int, dict]:
        body = json.dumps({"counts": counts, "taps": taps or []}).encode()
        status, data, _ = self.request("POST", f"/api/clips/{index}/answer", body)
        return status, json.loads(data)


def _serve(annotation) -> Iterator[Client]:
    server = AnnotationServer(annotation)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Client(server)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(recordings: list[Path], tmp_path: Path) -> Iterator[Client]:
    yield from _serve(open_annotation(recordings, tmp_path / "out" / "labels.csv", ["KD", "SD"], 2.0))


@pytest.mark.parametrize("target", [
    "/../secret.wav", "/static/../../secret.wav", "/static/..%2f..%2fsecret.wav", "/%2e%2e/%2e%2e/etc/passwd",
    "/api/clips/0/../../../secret.wav", "/static//etc/passwd", "/api/clips/0/..",
    "/static/%2Fetc%2Fpasswd", "/static\\..\\secret.wav", "http://127.0.0.1/etc/passwd",
])
def test_paths_with_dots_or_separators_are_refused(client: Client, target: str) -> None:
    status, body, _ = client.request("GET", target)
    assert status == 400
    assert b"root:" not in body and b"RIFF" not in body


@pytest.mark.parametrize("target", [
    "/etc/passwd", "/api/clips/6", "/api/clips/999999", "/api/clips/-1", "/api/clips/a.wav",
    "/api/clips/6/audio.wav", "/api/recordings/0", "/static/annotate.py", "/static/server.py", "/secret.wav",
    "/rec/a.wav", "/api/clips/0/audio.wav/x",
])
def test_unknown_clips_recordings_and_files_are_404(client: Client, recordings: list[Path], target: str) -> None:
    status, body, _ = client.request("GET", target)
    assert status == 404
    assert b"RIFF" not in body


def test_absolute_paths_are_not_served(client: Client, recordings: list[Path]) -> None:
    status, body, _ = client.request("GET", str(recordings[0]))
    assert status == 404 and b"RIFF" not in body
    status, body, _ = client.request("GET", "//etc/passwd")  # http.server may fold the leading // first
    assert status in (400, 404) and b"root:" not in body


def test_only_the_given_recordings_are_clips(client: Client) -> None:
    state = client.json("/api/state")
    assert [r["name"] for r in state["recordings"]] == ["a.wav", "b.wav", "walk.csv"]
    assert state["clips"] == 6 and state["first_open"] == 0
    assert [client.json(f"/api/clips/{i}")["name"] for i in range(6)] == ["a.wav"] * 3 + ["b.wav"] + ["walk.csv"] * 2


def test_foreign_host_and_form_posts_are_refused(client: Client) -> None:
    status, _, _ = client.request("GET", "/api/state", headers={"Host": "evil.example:80"})
    assert status == 403
    form = b"counts=1"
    status, _, _ = client.request("POST", "/api/clips/0/answer", form,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415


def test_page_and_assets_come_from_the_package(client: Client) -> None:
    status, page, _ = client.request("GET", "/")
    assert status == 200 and b"/static/annotate.js" in page
    assert b"http://" not in page and b"https://" not in page  # nothing from the internet
    for name in ("annotate.js", "annotate.css"):
        status, asset, _ = client.request("GET", f"/static/{name}")
        assert status == 200 and b"http://" not in asset and b"https://" not in asset


def test_clip_audio_is_the_clips_samples_and_supports_ranges(client: Client, recordings: list[Path]) -> None:
    status, wav, headers = client.request("GET", "/api/clips/1/audio.wav")
    assert status == 200 and headers["Content-Type"] == "audio/wav"
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    whole, _ = sf.read(recordings[0], dtype="float32")
    assert rate == RATE and np.allclose(samples, whole[2 * RATE: 4 * RATE], atol=1e-4)
    status, part, headers = client.request("GET", "/api/clips/1/audio.wav", headers={"Range": "bytes=10-19"})
    assert status == 206 and part == wav[10:20] and headers["Content-Range"] == f"bytes 10-19/{len(wav)}"
    assert byte_range("bytes=-4", 10) == (6, 10) and byte_range("bytes=5-", 10) == (5, 10)
    assert byte_range(None, 10) is None


def test_spectrogram_puts_a_tone_in_its_band() -> None:
    from eventcount.annotate.media import spectrogram

    seconds = np.arange(2 * RATE) / RATE
    peaks = []
    for hertz in (300, 1000, 3000):
        image = spectrogram(np.sin(2 * np.pi * hertz * seconds), RATE)
        cells = np.frombuffer(base64.b64decode(image["data"]), np.uint8).reshape(image["bands"], image["columns"])
        assert cells.shape == (image["bands"], 400) and cells.max() == 255
        peaks.append(int(cells.mean(axis=1).argmax()))
    assert peaks[0] < peaks[1] < peaks[2]


def test_sensor_clip_is_a_plot_without_audio(client: Client) -> None:
    clip = client.json("/api/clips/4")
    assert clip["sensor"] is True and len(clip["plot"]["channels"]) == 2 and "spectrogram" not in clip["plot"]
    assert len(clip["plot"]["channels"][0]["min"]) == 100  # 2 s at 50 Hz
    status, _, _ = client.request("GET", "/api/clips/4/audio.wav")
    assert status == 400


def test_answers_are_written_at_once_and_pass_the_check(client: Client, tmp_path: Path,
                                                        recordings: list[Path]) -> None:
    out = tmp_path / "out"
    assert client.answer(1, [2, 0]) == (200, {"saved": True, "answered": 1, "first_open": 0})
    assert (out / "labels.csv").read_text() == f"path,start_s,end_s,KD,SD\n{recordings[0]},2,4,2,0\n"
    assert client.answer(0, [1, 1])[1]["first_open"] == 2
    assert client.answer(3, [2, 1], [[0.5, "KD"], [1.25, "SD"], [1.9999, "KD"]])[0] == 200
    assert client.answer(4, [0, 3])[0] == 200
    table = read_count_table(out / "labels.csv")
    assert [(c.path.name, c.start_s, c.end_s, c.counts) for c in table.clips] == [
        ("a.wav", 0, 2, [1, 1]), ("a.wav", 2, 4, [2, 0]), ("b.wav", 0, 2, [2, 1]), ("walk.csv", 0, 2, [0, 3])]
    assert check_count_table(table).problems == []
    events = read_events(out / "b.events.tsv")
    assert [(e.time_s, e.label) for e in events] == [(0.5, "KD"), (1.25, "SD"), (1.9999, "KD")]
    assert (out / "b.events.tsv").read_text().splitlines()[0] == MARKER
    assert not (out / "a.events.tsv").exists()  # counted with keys: no timestamps claimed
    assert sorted(p.name for p in out.iterdir()) == ["b.events.tsv", "labels.csv"]  # no temporary files left


def test_counting_a_tapped_clip_with_keys_drops_its_taps(client: Client, tmp_path: Path) -> None:
    client.answer(3, [1, 0], [[0.5, "KD"]])
    client.answer(3, [4, 0])
    assert read_events(tmp_path / "out" / "b.events.tsv") == []
    assert client.json("/api/clips/3")["answer"] == {"counts": [4, 0], "taps": []}


@pytest.mark.parametrize("body", [
    {"counts": [1]}, {"counts": [1, -1]}, {"counts": [1, "2"]}, {"counts": [True, 0]}, {"counts": [1.5, 0]},
    {"counts": [1, 0], "taps": [[0.5, "HH"]]}, {"counts": [1, 0], "taps": [[2.5, "KD"]]},
    {"counts": [2, 0], "taps": [[0.5, "KD"]]}, {"counts": [1, 0], "taps": [0.5]}, {"taps": []}, [1, 2],
])
def test_bad_answers_are_refused_and_nothing_is_written(client: Client, tmp_path: Path, body: object) -> None:
    status, data, _ = client.request("POST", "/api/clips/0/answer", json.dumps(body).encode())
    assert status == 400 and json.loads(data)["error"]
    assert not (tmp_path / "out" / "labels.csv").exists()


def test_not_json_is_refused(client: Client) -> None:
    assert client.request("POST", "/api/clips/0/answer", b"{counts")[0] == 400
    assert client.request("GET", "/api/clips/0/answer")[0] == 405
    assert client.request("POST", "/api/clips/9/answer", b'{"counts": [0, 0]}')[0] == 404


def test_a_failed_write_leaves_the_previous_file(client: Client, tmp_path: Path, monkeypatch) -> None:
    client.answer(0, [1, 0])
    before = (tmp_path / "out" / "labels.csv").read_bytes()

    def broken_replace(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("eventcount.atomic.os.replace", broken_replace)
    status, data, _ = client.request("POST", "/api/clips/1/answer", b'{"counts": [5, 5]}')
    assert status == 500 and "not saved" in json.loads(data)["error"]
    assert (tmp_path / "out" / "labels.csv").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["labels.csv"]
    assert client.json("/api/clips/1")["answer"] is None and client.json("/api/state")["first_open"] == 1


def test_restart_resumes_at_the_first_clip_without_a_count(recordings: list[Path], tmp_path: Path) -> None:
    output = tmp_path / "out" / "labels.csv"
    first = open_annotation(recordings, output, ["KD", "SD"], 2.0)
    first.session.answer(0, [1, 0], [])
    first.session.answer(1, [0, 2], [(0.1, "SD"), (1.5, "SD")])
    first.session.answer(3, [3, 3], [])
    again = open_annotation(recordings, output, None, 2.0)  # classes come from the table
    assert again.session.classes == ["KD", "SD"]
    assert again.session.first_open() == 2 and again.session.answered() == 3
    assert again.session.taps_in_clip(1) == [(0.1, "SD"), (1.5, "SD")]
    assert again.clip(3)["answer"] == {"counts": [3, 3], "taps": []}
    with pytest.raises(EventcountError, match="holds the classes KD,SD"):
        open_annotation(recordings, output, ["KD", "HH"], 2.0)


def test_resume_keeps_rows_of_other_recordings_and_drops_taps_that_disagree(recordings: list[Path],
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.csv").write_text("path,start_s,end_s,KD,SD\nother.wav,0,1,4,4\n../rec/a.wav,0,2,1,0\n")
    a = recordings[0]
    (out / "a.events.tsv").write_text(f"{MARKER}\n0.5\tKD\n0.7\tKD\n")  # a save cut between the two files
    annotation = open_annotation(recordings, out / "labels.csv", ["KD", "SD"], 2.0)
    assert annotation.session.first_open() == 1 and annotation.session.taps_in_clip(0) == []
    annotation.session.answer(1, [0, 0], [])
    rows = (out / "labels.csv").read_text().splitlines()
    assert rows == ["path,start_s,end_s,KD,SD", "other.wav,0,1,4,4", f"{a},0,2,1,0", f"{a},2,4,0,0"]


def test_an_event_file_not_written_here_is_never_overwritten(recordings: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.events.tsv").write_text("0.25\tKD\n")  # reference timestamps of someone else
    annotation = open_annotation(recordings, out / "labels.csv", ["KD", "SD"], 2.0)
    with pytest.raises(EventcountError, match="not written by eventcount annotate"):
        annotation.session.answer(3, [1, 0], [(0.5, "KD")])
    annotation.session.answer(3, [1, 0], [])  # counting with keys still works
    assert (out / "b.events.tsv").read_text() == "0.25\tKD\n"
    assert "tapping is off" not in json.dumps(annotation.clip(0)) and annotation.clip(3)["no_taps"]


def test_taps_go_to_the_events_folder(recordings: list[Path], tmp_path: Path) -> None:
    annotation = open_annotation(recordings, tmp_path / "labels.csv", ["KD", "SD"], 2.0, events_dir=tmp_path / "taps")
    annotation.session.answer(2, [1, 0], [(0.25, "KD")])  # a.wav's clip 4-5 s
    assert [(e.time_s, e.label) for e in read_events(tmp_path / "taps" / "a.events.tsv")] == [(4.25, "KD")]


def test_recordings_sharing_a_stem_cannot_be_tapped(tmp_path: Path) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        _write_wav(tmp_path / folder / "take.wav", 2.0)
    annotation = open_annotation([tmp_path / "x", tmp_path / "y"], tmp_path / "labels.csv", ["KD"], 2.0)
    with pytest.raises(EventcountError, match="share take.events.tsv"):
        annotation.session.answer(0, [1], [(0.5, "KD")])
    annotation.session.answer(1, [2], [])


def test_bad_options_are_clear_errors(recordings: list[Path], tmp_path: Path) -> None:
    with pytest.raises(EventcountError, match="give the classes"):
        open_annotation(recordings, tmp_path / "labels.csv", None, 2.0)
    with pytest.raises(EventcountError, match="--window"):
        open_annotation(recordings, tmp_path / "labels.csv", ["KD"], 0.0)
    with pytest.raises(EventcountError, match="no such file"):
        open_annotation([tmp_path / "missing.wav"], tmp_path / "labels.csv", ["KD"], 2.0)


def test_model_proposes_counts_per_clip(recordings: list[Path], tmp_path: Path, tiny_model: Path) -> None:
    annotation = open_annotation(recordings[:2], tmp_path / "labels.csv", None, 2.0, model=str(tiny_model))
    assert annotation.session.classes == ["low", "mid", "high"]  # the model's classes by default
    annotation.proposals.wait(60)
    proposals = [annotation.clip(i)["proposal"] for i in range(4)]
    assert all(p["state"] == "ready" for p in proposals)
    detected = annotation.proposals.events
    for index, proposal in enumerate(proposals):
        clip = annotation.clips.clips[index]
        inside = [e for e in detected[clip.recording] if clip.start_s <= e.time_s < clip.end_s]
        assert proposal["counts"] == [sum(e.label == c for e in inside) for c in ("low", "mid", "high")]
    assert not (tmp_path / "labels.csv").exists()  # a proposal is not an answer


@pytest.mark.parametrize(("args", "message"), [
    (["missing.wav", "--classes", "KD"], "missing.wav: no such file or directory"),
    (["rec/a.wav"], "give the classes to count"),
    (["rec/a.wav", "--classes", "KD", "--window", "0s"], "--window must be a duration > 0"),
])
def test_cli_errors_are_one_line(recordings: list[Path], tmp_path: Path, monkeypatch, args: list[str],
                                 message: str) -> None:
    from typer.testing import CliRunner

    from eventcount.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["annotate", *args, "-o", "labels.csv", "--no-browser"])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "labels.csv").exists()


def test_a_busy_port_is_a_clear_error(client: Client, recordings: list[Path], tmp_path: Path) -> None:
    annotation = open_annotation(recordings, tmp_path / "other.csv", ["KD"], 2.0)
    with pytest.raises(EventcountError, match=f"cannot listen on 127.0.0.1:{client.port}"):
        AnnotationServer(annotation, port=client.port)
