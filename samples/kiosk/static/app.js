// The kiosk page: one WebSocket brings frames (binary) and JSON messages (hello, stats,
// telemetry). After showing a frame the page answers "ready"; the server sends the next frame
// only then, so a slow screen skips frames instead of falling behind.
"use strict";

const $ = (id) => document.getElementById(id);
const RECONNECT_MS = 1000;
const shownAt = [];
let framesShown = 0;

function text(id, value) {
  $(id).textContent = value === null || value === undefined ? "-" : String(value);
}

function badge(id, label, ok) {
  const el = $(id);
  el.textContent = label;
  el.classList.toggle("down", !ok);
}

function fixed(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "-";
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => badge("link-state", "live", true);
  ws.onclose = () => {
    badge("link-state", "reconnecting", false);
    setTimeout(connect, RECONNECT_MS);
  };
  ws.onmessage = (event) => {
    if (typeof event.data === "string") {
      onMessage(JSON.parse(event.data));
    } else {
      onFrame(ws, event.data);
    }
  };
}

// A frame: 4-byte big-endian length, that many bytes of JSON, then the JPEG. It is decoded off
// the page's thread and drawn whole, so the picture never flickers; "ready" goes back once the
// frame has been painted (a hidden tab paints nothing, so it is sent nothing).
async function onFrame(ws, buffer) {
  const length = new DataView(buffer).getUint32(0);
  const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const jpeg = new Blob([new Uint8Array(buffer, 4 + length)], { type: "image/jpeg" });
  try {
    const bitmap = await createImageBitmap(jpeg);
    const canvas = $("video");
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
    }
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    bitmap.close();
    showResults(meta);
  } finally {
    requestAnimationFrame(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send("ready");
    });
  }
}

function showResults(meta) {
  framesShown += 1;
  const now = performance.now();
  shownAt.push(now);
  while (shownAt.length > 30) shownAt.shift();
  const span = (shownAt[shownAt.length - 1] - shownAt[0]) / 1000;
  text("frame-seq", meta.seq);
  text("frames-shown", framesShown);
  text("view-fps", span > 0 ? ((shownAt.length - 1) / span).toFixed(1) : "0.0");
  text("latency", fixed(meta.latency_ms, 1));
  text("face-count", meta.faces.length);
  const list = $("faces");
  list.replaceChildren(
    ...meta.faces.map((face) => {
      const item = document.createElement("li");
      const [x1, y1, x2, y2] = face.box.map(Math.round);
      item.className = "face";
      item.dataset.score = face.score;
      item.textContent = `score ${face.score.toFixed(2)} at (${x1}, ${y1})-(${x2}, ${y2})`;
      return item;
    }),
  );
}

function onMessage(message) {
  if (message.type === "hello") {
    text("source", `${message.source} → ${message.model}`);
    text("model", `model ${message.model}, ${message.stream_fps} frames a second at most`);
    if (message.device === null) {
      badge("device-link", "no board", false);
      badge("tilt-state", "no board", false);
      text("device-url", "started with --device none");
    }
  } else if (message.type === "stats") {
    showStats(message);
  } else if (message.type === "telemetry") {
    showTelemetry(message);
  }
}

function showStats(stats) {
  text("pipeline-fps", fixed(stats.fps, 1));
  text("latency-p50", fixed(stats.latency_p50_ms, 1));
  text("latency-p99", fixed(stats.latency_p99_ms, 1));
  const rows = [];
  if (stats.source !== null) {
    rows.push(["source", stats.source.fps, null, null, stats.source.dropped]);
  }
  for (const st of stats.stages) rows.push([st.name, st.fps, st.p50_ms, st.p99_ms, st.dropped]);
  $("stages").replaceChildren(
    ...rows.map(([name, fps, p50, p99, dropped]) => {
      const row = document.createElement("tr");
      row.dataset.stage = name;
      for (const value of [name, fixed(fps, 1), fixed(p50, 2), fixed(p99, 2), dropped]) {
        const cell = document.createElement("td");
        cell.textContent = value === null ? "" : String(value);
        row.append(cell);
      }
      return row;
    }),
  );
  if (stats.ended) badge("link-state", "source ended", false);
}

function showTelemetry(t) {
  badge("device-link", t.connected ? "connected" : "link lost", t.connected);
  text("device-url", t.url);
  text("device-rtt", fixed(t.rtt_ms, 2));
  text("device-reconnects", t.reconnects);
  text("imu-samples", t.samples);
  text("imu-rate", fixed(t.rate_hz, 0));
  text("imu-lost", t.lost);
  if (t.device) {
    text("device-fw", t.device.firmware);
    text("device-uid", t.device.uid);
    text("device-epoch", t.device.epoch);
  }
  const imu = t.imu;
  if (imu) {
    text("pitch", fixed(imu.pitch_deg, 1));
    text("roll", fixed(imu.roll_deg, 1));
    text("accel", imu.accel_g.map((v) => v.toFixed(2)).join(" / ") + " g");
    text("gyro", imu.gyro_dps.map((v) => v.toFixed(1)).join(" / ") + " °/s");
    badge("tilt-state", imu.tilted ? "tilted" : "level", !imu.tilted);
    const horizon = $("horizon");
    horizon.style.transform = `rotate(${-imu.pitch_deg}deg)`;
    horizon.classList.toggle("tilted", imu.tilted);
  }
}

connect();
