"""samples/toy: the talking toy on its scripted child, as `edgekit demo toy` runs it, and on a
real PortAudio device; the reply must start, and stop when the child speaks (barge-in)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

TOY = Path(__file__).resolve().parents[2] / "samples" / "toy" / "toy.py"
RATE = 16000
#: from the start of the child's speech to the toy's decision to stop: VAD chunks of 32 ms,
#: a few of them to be sure it is speech.
BARGE_IN_LATENCY_S = 0.3


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("toy_sample", TOY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


toy = _load()


@dataclass(frozen=True)
class Demo:
    events: list[dict[str, Any]]
    summary: dict[str, Any]
    recording: np.ndarray  # (frames, 2): the toy, what it heard
    stderr: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """`edgekit demo toy --json` in an empty folder, on a machine without a sound device."""
    folder = tmp_path_factory.mktemp("toy")
    # no sound device, so the replies go to toy-reply.wav: no JACK server, and no ALSA
    # configuration that a test of the media package may have left for this process
    hidden = ("JACK_DEFAULT_SERVER", "XDG_CONFIG_HOME")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["JACK_NO_START_SERVER"] = "1"
    edgekit = Path(sys.executable).with_name("edgekit")
    proc = subprocess.run(
        [str(edgekit), "demo", "toy", "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert all(r["type"] == "event" for r in records[:-1]) and records[-1]["type"] == "summary"
    with wave.open(str(folder / "toy-reply.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, RATE, 2)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    recording = pcm.reshape(-1, 2).astype(np.float32) / 32768.0
    return Demo(records[:-1], records[-1], recording, proc.stderr)


def _line(summary: dict[str, Any], text: str) -> dict[str, Any]:
    return next(line for line in summary["script"] if line["text"] == text)


def _reply(summary: dict[str, Any], intent: str) -> dict[str, Any]:
    return next(r for r in summary["replies"] if r["intent"] == intent)


# ----------------------------------------------------------------------------- the demo


def test_the_child_is_understood(demo: Demo) -> None:
    assert demo.summary["intents"] == ["greeting", "story", "song", "goodnight"]
    assert demo.summary["output"] == "file toy-reply.wav"
    assert demo.summary["source"].startswith("file ") and demo.summary["source"].endswith(".wav")
    intents = [e for e in demo.events if e["event"] == "intent"]
    assert [e["keyword"] for e in intents] == ["hello", "tell me a story", "sing a song",
                                                "good night"]  # fmt: skip
    assert all(e["distance"] < 0.32 for e in intents)
    # each was heard where the script says it: a segment around the words
    heard = [e for e in demo.events if e["event"] == "heard"]
    for event, line in zip(heard, demo.summary["script"], strict=True):
        assert event["start_s"] - 0.1 <= line["start_s"] and line["end_s"] <= event["end_s"] + 0.1
    assert "Traceback" not in demo.stderr


def test_one_event_per_line_in_order(demo: Demo) -> None:
    kinds = [e["event"] for e in demo.events]
    answer = ["heard", "intent", "reply"]
    assert kinds == [
        *answer, "finished", *answer, "barge_in", "stopped", *answer, "finished", *answer,
        "finished",
    ]  # fmt: skip
    times = [e["t_s"] for e in demo.events]
    assert times == sorted(times)
    replies = [e for e in demo.events if e["event"] == "reply"]
    assert all(e["played"] == 0 and e["total"] > RATE for e in replies)


def test_the_story_starts_and_the_child_stops_it(demo: Demo) -> None:
    story = _reply(demo.summary, "story")
    interruption = _line(demo.summary, "sing a song")
    assert story["barged_in"] and demo.summary["barge_ins"] == 1
    # the story was being told when the child spoke, and stopped early
    assert story["started_s"] < interruption["start_s"] < story["ended_s"]
    assert 0 < story["played"] < 0.25 * story["total"]
    # in step with the input: what was played is what the time between start and stop allows
    assert story["played"] == pytest.approx((story["ended_s"] - story["started_s"]) * RATE,
                                            abs=toy.CHUNK)  # fmt: skip
    latency = story["barge_in_s"] - interruption["start_s"]
    assert 0 < latency <= BARGE_IN_LATENCY_S, latency
    assert story["speech_onset_s"] == pytest.approx(interruption["start_s"], abs=0.1)
    # the other replies were spoken to the end, each before the child spoke again
    for intent in ("greeting", "song", "goodnight"):
        reply = _reply(demo.summary, intent)
        assert not reply["barged_in"] and reply["played"] == reply["total"], reply
        assert reply["ended_s"] - reply["started_s"] == pytest.approx(
            reply["total"] / RATE, abs=0.05
        )
    song, goodnight = _reply(demo.summary, "song"), _line(demo.summary, "good night")
    assert song["started_s"] > interruption["end_s"] and song["ended_s"] < goodnight["start_s"]


def test_the_recording_shows_the_toy_fall_silent_when_the_child_speaks(demo: Demo) -> None:
    toy_voice, heard = demo.recording[:, 0], demo.recording[:, 1]
    assert len(demo.recording) == pytest.approx(demo.summary["seconds"] * RATE, abs=1)
    onset = _line(demo.summary, "sing a song")["start_s"]
    at = round(onset * RATE)
    # the right channel is the child: silent before the line, loud at it
    assert np.abs(heard[at - RATE // 2 : at - 160]).max() < 0.01
    assert np.abs(heard[at : at + 1600]).max() > 0.05
    # the toy was talking up to the child's first words ...
    assert np.abs(toy_voice[at - RATE // 2 : at]).max() > 0.05
    # ... and is silent from the barge-in until it answers the child
    stop = round((onset + BARGE_IN_LATENCY_S) * RATE)
    answer = round(_reply(demo.summary, "song")["started_s"] * RATE)
    assert answer - stop > RATE // 2
    assert np.abs(toy_voice[stop:answer]).max() == 0.0
    assert np.abs(toy_voice[answer : answer + RATE]).max() > 0.05
    # and the toy never talked over the child except for that moment
    for line in demo.summary["script"]:
        start, end = round(line["start_s"] * RATE), round(line["end_s"] * RATE)
        if line["text"] != "sing a song":
            assert np.abs(toy_voice[start:end]).max() == 0.0, line


# ----------------------------------------------------------------------------- a real sound device


def test_replies_play_on_a_sound_device_and_barge_in_stops_them(jack_device: str) -> None:
    events: list[Any] = []
    summary = toy.run(
        speaker=jack_device,
        script=((0.3, "tell me a story"), (3.0, "hello")),
        on_event=events.append,
    )
    assert summary.output == f"speaker {jack_device}"
    assert summary.intents == ("story", "greeting")
    story, greeting = summary.replies
    onset = summary.script.lines[1].start_s
    assert story.intent == "story" and story.barged_in
    assert 0 < story.barge_in_s - onset <= BARGE_IN_LATENCY_S
    # the device played the story in real time until it was stopped
    assert 0 < story.played < 0.3 * story.total
    assert story.played / RATE == pytest.approx(story.ended_s - story.started_s, abs=0.3)
    assert greeting.intent == "greeting" and not greeting.barged_in
    assert greeting.played == greeting.total
    assert [e.event for e in events if e.event in ("barge_in", "stopped", "finished")] == [
        "barge_in",
        "stopped",
        "finished",
    ]


def test_a_microphone_runs_the_same_loop(jack_device: str) -> None:
    # JACK's dummy driver captures silence: a second of it, paced by the device
    started = time.monotonic()
    summary = toy.run(mic=jack_device, speaker=jack_device, max_seconds=1.0)
    assert time.monotonic() - started >= 1.0
    assert summary.source == f"microphone {jack_device}"
    assert summary.output == f"speaker {jack_device}"
    assert 1.0 <= summary.seconds <= 1.1
    assert summary.intents == () and summary.replies == () and summary.script is None


# ----------------------------------------------------------------------------- behaviour in a batch


def batch(tmp_path: Path, script: tuple[tuple[float, str], ...], **options: Any) -> Any:
    """The conversation on a script read as fast as it is processed; replies in step, to a file."""
    return toy.run(out=tmp_path / "out.wav", realtime=False, script=script, workdir=tmp_path,
                   **options)  # fmt: skip


def test_unknown_speech_gets_the_fallback_unless_it_interrupts(tmp_path: Path) -> None:
    script = ((0.3, "what is your name"), (6.5, "tell me a story"), (10.0, "stop"))
    summary = batch(tmp_path, script)
    assert summary.intents == ("unknown", "story", "unknown")
    fallback, story = summary.replies  # no fallback after "stop": the toy just hushes
    assert fallback.intent == "unknown" and fallback.played == fallback.total
    assert fallback.total == toy.speak(toy.FALLBACK).size
    assert fallback.ended_s < 6.5
    assert story.barged_in and story.played < story.total


def test_speech_that_may_not_interrupt_is_ignored(tmp_path: Path) -> None:
    # a level gate no voice passes: what the toy hears while talking counts as its own echo
    gate = toy.BargeIn(threshold=0.5, min_dbfs=-1.0)
    summary = batch(tmp_path, ((0.3, "tell me a story"), (3.5, "sing a song")), barge_in=gate)
    assert summary.intents == ("story",)
    (story,) = summary.replies
    assert not story.barged_in and story.played == story.total
    ignored = [e for e in summary.events if e.event == "ignored"]
    assert len(ignored) == 1 and ignored[0].start_s == pytest.approx(3.5, abs=0.3)


def test_ctrl_c_hushes_the_toy_and_still_gives_the_summary(tmp_path: Path) -> None:
    def press_ctrl_c(event: Any) -> None:
        if event.event == "reply":
            raise KeyboardInterrupt

    summary = batch(tmp_path, ((0.3, "hello"), (5.0, "good night")), on_event=press_ctrl_c)
    assert summary.intents == ("greeting",)
    assert [e.event for e in summary.events][-2:] == ["quit", "stopped"]
    (greeting,) = summary.replies
    assert greeting.played == 0 and not greeting.barged_in
    assert summary.seconds < 2.0


def test_enrolling_from_a_recording_of_the_users_voice(tmp_path: Path) -> None:
    phrases = [phrase for phrase, _ in toy.PHRASES]
    script = [(2.0 + 4.5 * i, phrases[i // 2]) for i in range(8)]  # each phrase twice
    user = ("en-gb-scotland", 140, 50)
    recording = toy.make_script(tmp_path / "user.wav", [*script, (38.5, "hello")], voice=user)
    summary = toy.run(
        input_wav=recording.path, out=tmp_path / "out.wav", realtime=False, enroll_repeats=2
    )
    enrolled = [e for e in summary.events if e.event == "enrolled"]
    assert [e.keyword for e in enrolled] == [p for p in phrases for _ in range(2)]
    for event, line in zip(enrolled, recording.lines, strict=False):
        assert event.start_s == pytest.approx(line.start_s, abs=0.15)
    prompts = [r for r in summary.replies if r.intent == "enroll"]
    assert len(prompts) == 8 and all(r.played == r.total for r in prompts)
    assert summary.intents == ("greeting",)


def test_barge_in_gate() -> None:
    loud = np.full(512, 0.1, dtype=np.float32)  # -20 dBFS
    quiet = loud / 100  # -60 dBFS
    assert toy.BargeIn().allows(0.6, quiet)
    assert not toy.BargeIn().allows(0.4, loud)
    gate = toy.BargeIn(0.8, -35.0)
    assert gate.allows(0.9, loud) and not gate.allows(0.9, quiet) and not gate.allows(0.7, loud)


# ----------------------------------------------------------------------------- errors


def test_a_missing_input_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "child.wav"
    assert toy.main(["--input", str(missing), "--out", str(tmp_path / "out.wav")]) == 2
    err = capsys.readouterr().err
    assert err == f"toy: error: {missing} does not exist: give the path of a mono WAV file\n"


def test_options_that_do_not_go_together(tmp_path: Path) -> None:
    with pytest.raises(toy.ToyError, match="--mic"):
        toy.run(enroll_repeats=2, out=tmp_path / "out.wav")
    with pytest.raises(toy.ToyError, match="give --out"):
        toy.run(realtime=False)
    with pytest.raises(toy.ToyError, match="--input"):
        toy.run(mic=0, input_wav=tmp_path / "child.wav")
    with pytest.raises(toy.ToyError, match="--out"):
        toy.run(speaker=0, out=tmp_path / "out.wav")
    with pytest.raises(SystemExit):
        toy.main(["--mic", "0", "--input", "child.wav"])
