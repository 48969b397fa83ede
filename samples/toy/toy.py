"""Talking companion toy: it listens, recognises a few phrases, answers, and hushes when spoken to.

    python samples/toy/toy.py                        # a scripted child; replies to toy-reply.wav
    python samples/toy/toy.py --json                 # one JSON object per event
    python samples/toy/toy.py --mic USB --speaker USB --enroll   # real hardware, your own voice

Without ``--mic`` or ``--input`` the child is a WAV script built at run time with espeak-ng: it
says "hello", then "tell me a story", and while the story is being told, "sing a song". The script
is read through ``WavSource(realtime=True)``, so it arrives at the pace of a microphone and the
toy listens while it talks: when the child starts speaking (voice activity detection), the reply
is stopped at once (barge-in) and what the child said is answered next.

Pipeline: audio in 32 ms chunks -> Silero VAD (speech start: barge-in; speech end: a segment)
-> keyword spotter (MFCC + DTW against templates, a rejection threshold) -> intent -> the reply,
synthesized with espeak-ng at start-up, played on a speaker (``--speaker``) or into a WAV file
(``--out``, a ``WavSpeaker`` on the input's clock; the default when there is no sound device).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import edgekit
from edgekit import BackendUnavailable, EdgekitError
from edgekit.media import (
    AudioDeviceError,
    AudioSink,
    AudioSource,
    EndOfStream,
    Microphone,
    Playback,
    Speaker,
    WavSink,
    WavSource,
    WavSpeaker,
    synthesize,
)
from edgekit.media.audio import AudioRing
from edgekit.tasks import SpeechSegment, head_for
from edgekit.tasks.keyword import KeywordSpotter, make_spotter
from edgekit.tasks.vad import VadHead, VadSegmenter

F32 = npt.NDArray[np.float32]

RATE = 16000
CHUNK = 512  # 32 ms, one Silero VAD step
HEARD_SECONDS = 30.0  # how much input is kept for the keyword step (the longest utterance)

#: (phrase, intent) pairs the toy understands.
PHRASES: tuple[tuple[str, str], ...] = (
    ("hello", "greeting"),
    ("tell me a story", "story"),
    ("sing a song", "song"),
    ("good night", "goodnight"),
)
REPLIES: dict[str, str] = {
    "greeting": "Hello, friend! A story, or a song?",
    "story": (
        "Once upon a time, in a little house at the edge of a big green forest, there lived a "
        "small robot called Pip. Every morning, Pip watered the flowers, counted the clouds, and "
        "said good morning to every bird in the garden. One day, a tiny bird with blue feathers "
        "landed on Pip's shoulder and whispered a secret."
    ),
    "song": "Twinkle, twinkle, little star, how I wonder what you are!",
    "goodnight": "Good night! Sleep tight.",
}
FALLBACK = "Sorry, I did not catch that. Say hello, or ask me for a story or a song."
#: the toy's voice: (espeak-ng voice, words per minute, pitch).
TOY_VOICE = ("en-gb+f3", 185, 60)
#: the scripted child: a high, slow voice the keyword templates were not made with.
CHILD_VOICE = ("en-us+f4", 130, 80)
#: (seconds from the start, words): "sing a song" comes while the story is being told.
SCRIPT: tuple[tuple[float, str], ...] = (
    (0.5, "hello"),
    (4.0, "tell me a story"),
    (7.5, "sing a song"),
    (13.0, "good night"),
)
DEFAULT_OUT = Path("toy-reply.wav")


class ToyError(EdgekitError):
    """The toy cannot do what was asked; the message names the fix."""


# ----------------------------------------------------------------------------- the scripted child


@dataclass(frozen=True)
class Line:
    """One thing the scripted child says; times are where its sound is in the script."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Script:
    path: Path
    lines: tuple[Line, ...]
    seconds: float


def make_script(
    path: Path,
    script: Sequence[tuple[float, str]] = SCRIPT,
    voice: tuple[str, int, int] = CHILD_VOICE,
    tail_s: float = 3.0,
) -> Script:
    """Write the child's side of the conversation to a 16 kHz mono WAV file at ``path``."""
    name, speed, pitch = voice
    pieces: list[tuple[int, F32]] = []
    lines: list[Line] = []
    for at_s, text in script:
        speech = synthesize(text, voice=name, speed=speed, pitch=pitch, rate=RATE)
        audible = np.flatnonzero(np.abs(speech) > 0.01)
        if audible.size == 0:
            raise ToyError(f"espeak-ng produced no sound for {text!r}: check its installation")
        at = round(at_s * RATE)
        if pieces and at < pieces[-1][0] + pieces[-1][1].size:
            raise ToyError(f"script line {text!r} at {at_s} s overlaps the line before it")
        pieces.append((at, speech))
        lines.append(Line(text, (at + audible[0]) / RATE, (at + audible[-1] + 1) / RATE))
    total = pieces[-1][0] + pieces[-1][1].size + round(tail_s * RATE) if pieces else RATE
    audio = np.zeros(total, dtype=np.float32)
    for at, speech in pieces:
        audio[at : at + speech.size] = speech
    with WavSink(path, RATE) as sink:
        sink.write(audio)
    return Script(path, tuple(lines), total / RATE)


# ----------------------------------------------------------------------------- where replies go


def open_output(
    stack: ExitStack, speaker: str | int | None, out: Path | None
) -> tuple[AudioSink, str]:
    """Where the replies go, and its description: the WAV file ``out``, else the sound device
    ``speaker``; with neither, the default sound device if there is one, else
    :data:`DEFAULT_OUT`.

    A file is played on the input's clock (:meth:`Toy.hear` advances it by every chunk heard)
    and is stereo: left is the toy, right is what it heard, sample by sample, so the file shows
    when the toy stopped for the child.
    """
    if out is None:
        try:
            device = stack.enter_context(Speaker(speaker, rate=RATE))
            return device, f"speaker {device.device}"
        except (AudioDeviceError, BackendUnavailable):  # no device, PortAudio or sounddevice
            if speaker is not None:
                raise
        out = DEFAULT_OUT
    file = stack.enter_context(WavSpeaker(out, RATE, realtime=False, capture_channels=1))
    return file, f"file {out}"


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """Something that happened; ``t_s`` is input time (seconds of audio heard so far)."""

    t_s: float
    event: str  # heard, intent, reply, barge_in, stopped, finished, ignored, enroll, enrolled, quit
    text: str = ""
    intent: str | None = None
    keyword: str | None = None
    distance: float | None = None
    start_s: float | None = None  # the speech heard: where it starts and ends in the input
    end_s: float | None = None
    played: int | None = None  # samples of the reply played, of total
    total: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}

    def describe(self) -> str:
        text = f"{self.t_s:7.2f} s  {self.event.upper():<9}"
        if self.start_s is not None:
            end = "" if self.end_s is None else f"-{self.end_s:.2f}"
            text += f" speech {self.start_s:.2f}{end} s"
        if self.intent is not None:
            text += f" intent {self.intent}"
        if self.keyword is not None and self.distance is not None:
            text += f" ({self.keyword!r}, distance {self.distance:.3f})"
        if self.event == "reply" and self.total is not None:
            text += f" {self.total} samples ({self.total / RATE:.2f} s)"
        elif self.played is not None and self.total is not None:
            text += f" played {self.played}/{self.total} samples"
            text += f" ({self.played / RATE:.2f} of {self.total / RATE:.2f} s)"
        if self.text:
            text += f" {self.text}"
        return text


@dataclass(frozen=True)
class ReplyReport:
    """One reply: what it answered, when, and how much of it was spoken."""

    intent: str
    started_s: float
    ended_s: float
    played: int
    total: int
    barged_in: bool
    barge_in_s: float | None = None  # input time of the decision to stop
    speech_onset_s: float | None = None  # input time the interrupting speech was detected


@dataclass(frozen=True)
class Summary:
    source: str
    output: str
    seconds: float
    intents: tuple[str, ...]
    replies: tuple[ReplyReport, ...]
    events: tuple[Event, ...] = field(repr=False)
    script: Script | None = None  # the scripted child, when there was one

    @property
    def barge_ins(self) -> int:
        return sum(r.barged_in for r in self.replies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "output": self.output,
            "seconds": round(self.seconds, 3),
            "intents": list(self.intents),
            "barge_ins": self.barge_ins,
            "replies": [asdict(r) for r in self.replies],
            "script": None if self.script is None else [asdict(x) for x in self.script.lines],
        }

    def describe(self) -> str:
        lines = [
            f"{self.seconds:.1f} s of audio from {self.source}; replies to {self.output}",
            f"intents: {' '.join(self.intents) or 'none'}; barge-ins: {self.barge_ins}",
        ]
        for r in self.replies:
            how = "stopped by barge-in" if r.barged_in else "spoken to the end"
            lines.append(
                f"  {r.intent:<10} {r.started_s:6.2f}-{r.ended_s:6.2f} s  "
                f"{r.played}/{r.total} samples, {how}"
            )
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the conversation


@dataclass(frozen=True)
class BargeIn:
    """When speech interrupts the toy.

    A chunk heard while the toy talks stops it when the VAD is in speech, the chunk's speech
    probability is at least ``threshold`` and its level at least ``min_dbfs``. On a real
    microphone the toy hears itself; a higher threshold and a level gate keep its own voice,
    quieter at the microphone than a child nearby, from interrupting it.
    """

    threshold: float = 0.5
    min_dbfs: float | None = None

    def allows(self, prob: float, chunk: F32) -> bool:
        if prob < self.threshold:
            return False
        if self.min_dbfs is None:
            return True
        rms = float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2)))
        return bool(20.0 * np.log10(rms + 1e-12) >= self.min_dbfs)


@dataclass
class _Talk:
    intent: str
    reply: Playback
    started_s: float


class Toy:
    """Listens to a source chunk by chunk and talks back through an output (see
    :func:`open_output`)."""

    def __init__(
        self,
        vad: VadSegmenter,
        spotter: KeywordSpotter,
        output: AudioSink,
        replies: dict[str, F32],
        fallback: F32,
        barge_in: BargeIn = BargeIn(),
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.vad = vad
        self.spotter = spotter
        self.output = output
        #: a file played in step with the input: every chunk heard moves its clock on
        self.clocked = output if isinstance(output, WavSpeaker) and not output.realtime else None
        self.replies = replies
        self.fallback = fallback
        self.barge_in = barge_in
        self.on_event = on_event
        self.events: list[Event] = []
        self.reports: list[ReplyReport] = []
        self.intents: list[str] = []
        self.heard = AudioRing(round(HEARD_SECONDS * RATE), 1)
        self.talk: _Talk | None = None
        self.addressed = False  # the speech now being heard is for the toy, not its own echo
        self.interrupted = False  # ... and it stopped the toy
        self.onset_s = 0.0
        self.said_goodnight = False
        #: while enrolling, finished speech is collected here instead of answered
        self.captured: list[SpeechSegment] | None = None

    @property
    def now_s(self) -> float:
        return self.heard.written / RATE

    def emit(self, event: str, **fields: Any) -> Event:
        record = Event(round(self.now_s, 3), event, **fields)
        self.events.append(record)
        if self.on_event is not None:
            self.on_event(record)
        return record

    def hear(self, samples: F32) -> None:
        """One chunk of input: move the reply on, run the VAD, barge in, answer what was said."""
        self.heard.write(samples[:, None])
        if self.clocked is not None:
            self.clocked.advance(samples.size, samples)
        was_in_speech = self.vad.in_speech
        closed = self.vad.feed(samples)
        if self.talk is not None and self.talk.reply.done:
            self._end_talk(barged_in=False)
        if self.vad.in_speech and not was_in_speech:
            self.onset_s = self.now_s - samples.size / RATE
            self.addressed = self.talk is None
            self.interrupted = False
        prob = self.vad.last_probability or 0.0
        talk = self.talk
        unheard = self.vad.in_speech and not self.addressed  # speech the toy talks over
        if talk is not None and unheard and self.barge_in.allows(prob, samples):
            self.addressed = self.interrupted = True
            talk.reply.stop()
            self.emit("barge_in", intent=talk.intent, start_s=round(self.onset_s, 3))
            self._end_talk(barged_in=True)
        for segment in closed:
            self.answer(segment)

    def answer(self, segment: SpeechSegment) -> None:
        """Act on a stretch of speech that ended."""
        span = {"start_s": round(segment.start_s, 3), "end_s": round(segment.end_s, 3)}
        if not self.addressed:
            self.emit("ignored", text="speech while the toy was talking (its own voice?)", **span)
            return
        self.addressed = False
        self.emit("heard", **span)
        if self.captured is not None:
            self.captured.append(segment)
            return
        audio = self.audio_of(segment)
        match = self.spotter.spot(audio)
        if match is None:
            self.intents.append("unknown")
            closest = self.spotter.distances(audio)[0]
            self.emit(
                "intent",
                intent="unknown",
                keyword=closest.keyword,
                distance=round(closest.distance, 3),
            )
            if not self.interrupted:  # after "stop!" or "shh" the toy just keeps quiet
                self.say("unknown", self.fallback)
            return
        self.intents.append(match.intent)
        self.emit(
            "intent", intent=match.intent, keyword=match.keyword, distance=round(match.distance, 3)
        )
        self.say(match.intent, self.replies[match.intent])
        self.said_goodnight = self.said_goodnight or match.intent == "goodnight"

    def audio_of(self, segment: SpeechSegment) -> F32:
        """The input samples of ``segment`` (its start may have left the ring already)."""
        start = max(round(segment.start_s * RATE), self.heard.oldest)
        stop = min(round(segment.end_s * RATE), self.heard.written)
        return self.heard.copy(start, stop - start)[:, 0]

    def say(self, intent: str, samples: F32) -> None:
        self.hush()
        reply = self.output.play(samples, RATE)
        self.talk = _Talk(intent, reply, self.now_s)
        self.emit("reply", intent=intent, played=0, total=reply.frames_total)

    def hush(self) -> None:
        """Stop the reply being spoken, if any (not a barge-in: the toy stops by itself)."""
        if self.talk is not None:
            self.talk.reply.stop()
            self._end_talk(barged_in=False)

    def _end_talk(self, barged_in: bool) -> None:
        talk, self.talk = self.talk, None
        if talk is None:
            return
        played, total = talk.reply.frames_played, talk.reply.frames_total
        # a sound device may go on playing after the input ended
        ended_s = self.now_s if barged_in else max(self.now_s, talk.started_s + played / RATE)
        event = "finished" if played >= total else "stopped"
        self.emit(event, intent=talk.intent, played=played, total=total)
        self.reports.append(
            ReplyReport(
                intent=talk.intent,
                started_s=round(talk.started_s, 3),
                ended_s=round(ended_s, 3),
                played=played,
                total=total,
                barged_in=barged_in,
                barge_in_s=round(self.now_s, 3) if barged_in else None,
                speech_onset_s=round(self.onset_s, 3) if barged_in else None,
            )
        )

    def close(self) -> None:
        """End of input: answer the last speech, let the last reply end.

        Silence is heard from here on, so the VAD closes the last segment as it would on a
        microphone, and a reply written in step with the input is written to its end.
        """
        silence = np.zeros(CHUNK, dtype=np.float32)
        for _ in range(round(2 * RATE / CHUNK)):  # the VAD needs 100 ms; 2 s is plenty
            if not self.vad.in_speech:
                break
            self.hear(silence)
        while self.clocked is not None and self.talk is not None:
            self.hear(silence)
        if self.talk is not None:  # a sound device plays the rest by itself
            self.talk.reply.wait()
            self._end_talk(barged_in=False)

    @property
    def finished(self) -> bool:
        """The child said good night and the toy has answered."""
        return self.said_goodnight and self.talk is None


def converse(source: AudioSource, toy: Toy, max_seconds: float | None = None) -> None:
    """Feed ``source`` to ``toy`` chunk by chunk until it ends, good night, ``max_seconds`` or
    Ctrl-C."""
    try:
        while max_seconds is None or toy.now_s < max_seconds:
            try:
                chunk = source.read(CHUNK, timeout=5.0)
            except EndOfStream:
                break
            toy.hear(chunk.samples)
            if toy.finished:
                break
    except KeyboardInterrupt:
        toy.emit("quit", text="Ctrl-C")
        toy.hush()
    finally:
        toy.close()


def enroll(source: AudioSource, toy: Toy, repeats: int = 2, listen_s: float = 8.0) -> int:
    """Ask for each phrase ``repeats`` times and enroll what is said; the templates added.

    The toy says "Please say: hello." and the first speech that starts after the prompt (or
    interrupts it) within ``listen_s`` seconds becomes a template.
    """
    added = 0
    toy.captured = []
    try:
        for phrase, intent in PHRASES:
            for attempt in range(1, repeats + 1):
                toy.say("enroll", speak(f"Please say: {phrase}."))
                toy.emit("enroll", keyword=phrase, text=f"say it ({attempt}/{repeats})")
                segment = _listen(source, toy, listen_s)
                if segment is None:
                    toy.emit("enroll", keyword=phrase, text="heard nothing; skipped")
                    continue
                toy.spotter.enroll(phrase, toy.audio_of(segment), intent=intent, source="recorded")
                added += 1
                toy.emit(
                    "enrolled",
                    keyword=phrase,
                    intent=intent,
                    start_s=round(segment.start_s, 3),
                    end_s=round(segment.end_s, 3),
                )
    finally:
        toy.captured = None
    return added


def _listen(source: AudioSource, toy: Toy, listen_s: float) -> SpeechSegment | None:
    """The next speech addressed to the toy, within ``listen_s`` after it stopped talking."""
    assert toy.captured is not None
    toy.captured.clear()
    deadline: float | None = None
    while not toy.captured:
        if deadline is None and toy.talk is None:
            deadline = toy.now_s + listen_s
        if deadline is not None and toy.now_s > deadline and not toy.vad.in_speech:
            return None
        try:
            chunk = source.read(CHUNK, timeout=5.0)
        except EndOfStream:
            return None
        toy.hear(chunk.samples)
    return toy.captured.pop(0)


# ----------------------------------------------------------------------------- the run


def speak(text: str) -> F32:
    """``text`` in the toy's voice."""
    name, speed, pitch = TOY_VOICE
    return synthesize(text, voice=name, speed=speed, pitch=pitch, rate=RATE)


def run(
    *,
    mic: str | int | None = None,
    input_wav: Path | None = None,
    speaker: str | int | None = None,
    out: Path | None = None,
    enroll_repeats: int = 0,
    max_seconds: float | None = None,
    realtime: bool = True,
    barge_in: BargeIn | None = None,
    script: Sequence[tuple[float, str]] = SCRIPT,
    workdir: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> Summary:
    """Hold one conversation and return what happened.

    Args:
        mic: A microphone (PortAudio index or name); ``None`` reads ``input_wav``.
        input_wav: The child as a WAV file; ``None`` (and no ``mic``) builds the script.
        speaker: A sound device for the replies (index or name).
        out: Write the replies (left) and the input (right) to this stereo WAV file instead.
        enroll_repeats: Before talking, record each phrase this many times (from ``mic``, or
            from the start of ``input_wav``).
        max_seconds: Stop after this much input.
        realtime: Read a WAV input at the pace of a microphone; ``False`` reads it as fast as
            it is processed (a recording checked in a batch; replies go to ``out`` in step).
        barge_in: What may interrupt the toy; default: any speech on a file, loud and clear
            speech on a microphone (which also hears the toy).
        script: What the scripted child says, and when (seconds from the start).
        workdir: Where the script is written (a temporary folder when ``None``).
        on_event: Called with every event as it happens.
    """
    if mic is not None and input_wav is not None:
        raise ToyError("give either a microphone (--mic) or a WAV file (--input), not both")
    if speaker is not None and out is not None:
        raise ToyError("give either a speaker (--speaker) or a WAV file (--out), not both")
    if enroll_repeats and mic is None and input_wav is None:
        raise ToyError("enrollment records your voice: give a microphone with --mic")
    if not realtime and out is None:
        raise ToyError("without real-time input the replies cannot go to a speaker: give --out")
    if input_wav is not None and not input_wav.is_file():  # before seconds of start-up work
        raise ToyError(f"{input_wav} does not exist: give the path of a mono WAV file")
    if barge_in is None:
        barge_in = BargeIn(0.8, -35.0) if mic is not None else BargeIn()
    spotter = make_spotter(PHRASES)
    replies = {intent: speak(text) for intent, text in REPLIES.items()}
    fallback = speak(FALLBACK)
    model = edgekit.load("silero-vad", num_threads=1)
    script_made: Script | None = None
    try:
        with ExitStack() as stack:
            source: AudioSource
            if mic is not None:
                microphone = stack.enter_context(Microphone(mic, rate=RATE))
                source, described = microphone, f"microphone {microphone.device}"
            else:
                if input_wav is None:
                    folder = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
                    script_made = make_script(folder / "toy-child.wav", script)
                    input_wav = script_made.path
                source = stack.enter_context(WavSource(input_wav, RATE, realtime=realtime))
                described = f"file {input_wav}"
                if source.channels != 1:
                    raise ToyError(f"{input_wav} has {source.channels} channels: give a mono WAV")
            output, output_described = open_output(stack, speaker, out)
            head = head_for(model)
            if not isinstance(head, VadHead):
                raise ToyError(f"silero-vad has task {head.task!r}, not 'vad': check its manifest")
            vad = head.segmenter(model.run)
            toy = Toy(vad, spotter, output, replies, fallback, barge_in, on_event)
            if enroll_repeats:
                enroll(source, toy, enroll_repeats)
            converse(source, toy, max_seconds)
    finally:
        model.close()
    return Summary(
        source=described,
        output=output_described,
        seconds=round(toy.now_s, 3),
        intents=tuple(toy.intents),
        replies=tuple(toy.reports),
        events=tuple(toy.events),
        script=script_made,
    )


def _device(text: str | None) -> str | int | None:
    return int(text) if text is not None and text.isdigit() else text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--mic", help="microphone (PortAudio index or name); default: the script")
    given.add_argument("--input", type=Path, help="the child as a mono WAV file")
    replies = parser.add_mutually_exclusive_group()
    replies.add_argument("--speaker", help="sound device for the replies (index or name)")
    replies.add_argument(
        "--out", type=Path, help=f"write replies + input to this stereo WAV ({DEFAULT_OUT})"
    )
    parser.add_argument(
        "--enroll",
        type=int,
        nargs="?",
        const=2,
        default=0,
        metavar="N",
        help="first record each phrase N (2) times from --mic (or --input)",
    )
    parser.add_argument("--seconds", type=float, help="stop after this much input")
    parser.add_argument(
        "--barge-in-db", type=float, help="level (dBFS) speech needs to interrupt the toy"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    def show(event: Event) -> None:
        if args.json:
            print(json.dumps({"type": "event", **event.to_dict()}), flush=True)
        else:
            print(event.describe(), flush=True)

    barge_in = None
    if args.barge_in_db is not None:
        barge_in = BargeIn(0.8 if args.mic else 0.5, args.barge_in_db)
    try:
        summary = run(
            mic=_device(args.mic),
            input_wav=args.input,
            speaker=_device(args.speaker),
            out=args.out,
            enroll_repeats=args.enroll,
            max_seconds=args.seconds,
            barge_in=barge_in,
            on_event=show,
        )
    except EdgekitError as e:
        print(f"toy: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps({"type": "summary", **summary.to_dict()}))
    else:
        print(summary.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
