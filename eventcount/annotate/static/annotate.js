// eventcount annotate: the page that walks through clips, plays them, draws them and saves a count per class.
// Every change is sent to the local server at once (in order, one request after another).
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#d1495b", "#2457c5", "#edae49", "#00798c", "#7b2cbf", "#3f8f29", "#ff7f11", "#6c757d", "#a4036f"];
const RATES = [1, 0.75, 0.5, 0.25];

const ui = {
  info: null,       // /api/state
  clip: null,       // /api/clips/<i>
  index: 0,
  counts: [],
  taps: [],         // [seconds from the clip's start, class]
  saved: false,     // the shown counts are saved (or queued)
  selected: 0,
  typing: false,    // the next digit extends the selected count instead of replacing it
  pass: 0,          // playback passes from the clip's start; a tap in a new pass starts the taps afresh
  tapPass: -1,
  pending: 0,
  queue: Promise.resolve(),
  waiting: [],      // answers queued but not sent yet (a newer answer of the same clip replaces the last)
  prefetched: new Map(),
  view: "waveform", // or "spectrogram" (audio clips)
};

// ------------------------------------------------------------------------------------------ server

async function api(path, options) {
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function fetchClip(index) {
  if (ui.prefetched.has(index)) {
    const ready = ui.prefetched.get(index);
    ui.prefetched.delete(index);
    return ready;
  }
  return ui.queue.then(() => api(`/api/clips/${index}`));  // after the saves sent so far: never a stale answer
}

function save() {
  const index = ui.index;
  const body = JSON.stringify({ counts: ui.counts.slice(), taps: ui.taps.map((t) => [t[0], t[1]]) });
  ui.saved = true;
  ui.prefetched.delete(index);
  const last = ui.waiting[ui.waiting.length - 1];
  if (last && last.index === index) { last.body = body; return ui.queue; }  // not sent yet: send the newest
  const item = { index, body };
  ui.waiting.push(item);
  ui.pending += 1;
  showSaving();
  ui.queue = ui.queue
    .then(() => {
      ui.waiting.shift();
      return api(`/api/clips/${index}/answer`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: item.body, keepalive: true });
    })
    .then((reply) => {
      ui.info.answered = reply.answered;
      ui.info.first_open = reply.first_open;
    })
    .catch((error) => {
      if (index === ui.index) ui.saved = false;
      say(`clip ${index + 1} NOT saved: ${error.message}`, "error");
    })
    .finally(() => {
      ui.pending -= 1;
      showSaving();
      showProgress();
    });
  return ui.queue;
}

// ------------------------------------------------------------------------------------------ player

const audio = $("audio");
const player = {
  playing: false,
  frame: 0,
  rate: 1,
  loop: false,
  clockStart: 0,
  clockOffset: 0,
  sensor() { return ui.clip && ui.clip.sensor; },
  length() { return ui.clip ? ui.clip.end_s - ui.clip.start_s : 0; },
  time() {
    if (!this.sensor()) return audio.currentTime;
    if (!this.playing) return this.clockOffset;
    return this.clockOffset + ((performance.now() - this.clockStart) / 1000) * this.rate;
  },
  fromStart() {
    ui.pass += 1;
    this.playing = true;
    if (this.sensor()) {
      this.clockOffset = 0;
      this.clockStart = performance.now();
    } else {
      audio.playbackRate = this.rate;
      audio.currentTime = 0;
      audio.play().catch((error) => {
        if (error.name === "AbortError") return;  // another clip was loaded meanwhile
        this.playing = false;
        say("press Space to play the clip");
      });
    }
    cancelAnimationFrame(player.frame);  // one drawing loop, however often playback restarts
    player.frame = requestAnimationFrame(tick);
  },
  pause() {
    if (this.sensor()) this.clockOffset = this.time();
    else audio.pause();
    this.playing = false;
    draw();
  },
  ended() {
    if (this.loop) this.fromStart();
    else { this.playing = false; if (this.sensor()) this.clockOffset = this.length(); draw(); }
  },
};
audio.addEventListener("ended", () => player.ended());
audio.addEventListener("playing", () => {
  if ($("message").textContent === "press Space to play the clip") say("");
});

function tick() {
  if (!player.playing) return;
  if (player.sensor() && player.time() >= player.length()) { player.ended(); return; }
  draw();
  player.frame = requestAnimationFrame(tick);
}

// ------------------------------------------------------------------------------------------ drawing

const canvas = $("plot");

const layer = document.createElement("canvas");  // everything but the playhead, redrawn only when it changes

function draw() {
  if (!ui.clip) return;
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * ratio);
  const height = Math.round(canvas.clientHeight * ratio);
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  if (layer.width !== width || layer.height !== height) drawLayer();
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  g.drawImage(layer, 0, 0);
  const length = player.length();
  g.fillStyle = "#111827";
  g.fillRect((Math.min(player.time(), length) / length) * width - ratio / 2, 0, ratio, height - 18 * ratio);
}

function drawLayer() {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * ratio);
  const height = Math.round(canvas.clientHeight * ratio);
  layer.width = width;
  layer.height = height;
  const g = layer.getContext("2d");
  const length = player.length();
  const x = (seconds) => (seconds / length) * width;
  const axis = 18 * ratio;
  drawGrid(g, length, x, height, axis, ratio);
  if (ui.view === "spectrogram" && ui.clip.plot.spectrogram) {
    drawSpectrogram(g, ui.clip.plot.spectrogram, width, height - axis);
  } else {
    const channels = ui.clip.plot.channels;
    const band = (height - axis) / channels.length;
    channels.forEach((channel, c) => drawChannel(g, channel, c * band, band, width, ui.clip.sensor));
  }
  (ui.clip.proposal ? ui.clip.proposal.events : []).forEach(([t]) => {
    g.fillStyle = "#9aa1ad";
    g.fillRect(x(t) - ratio, 0, 2 * ratio, 10 * ratio);
  });
  g.font = `${11 * ratio}px sans-serif`;
  ui.taps.forEach(([t, label]) => {
    g.fillStyle = COLORS[ui.info.classes.indexOf(label) % COLORS.length];
    g.fillRect(x(t) - ratio, 12 * ratio, 2 * ratio, height - axis - 12 * ratio);
    g.fillText(label, x(t) + 3 * ratio, 24 * ratio);
  });
}

function drawGrid(g, length, x, height, axis, ratio) {
  const step = length > 20 ? 5 : length > 5 ? 1 : length > 1 ? 0.25 : 0.1;
  g.fillStyle = "#6b7280";
  g.font = `${11 * ratio}px sans-serif`;
  for (let t = 0; t <= length + 1e-9; t += step) {
    g.fillStyle = "#eef0f3";
    g.fillRect(x(t), 0, ratio, height - axis);
    g.fillStyle = "#6b7280";
    g.fillText(`${+(ui.clip.start_s + t).toFixed(2)} s`, x(t) + 3 * ratio, height - 5 * ratio);
  }
}

function drawSpectrogram(g, spectrogram, width, height) {
  const { columns, bands } = spectrogram;
  const cells = Uint8Array.from(atob(spectrogram.data), (c) => c.charCodeAt(0));
  const image = new ImageData(columns, bands);
  for (let b = 0; b < bands; b += 1) {
    for (let i = 0; i < columns; i += 1) {
      const t = cells[b * columns + i] / 255;
      const at = ((bands - 1 - b) * columns + i) * 4;  // the lowest band at the bottom
      image.data[at] = 255 * Math.min(1, 1.5 * t);
      image.data[at + 1] = 255 * Math.max(0, 1.5 * t - 0.5);
      image.data[at + 2] = 255 * (0.25 + 0.35 * t * (1 - t));
      image.data[at + 3] = 255;
    }
  }
  const small = document.createElement("canvas");
  small.width = columns;
  small.height = bands;
  small.getContext("2d").putImageData(image, 0, 0);
  g.drawImage(small, 0, 0, width, height);
}

function drawChannel(g, channel, top, band, width, sensor) {
  const n = channel.min.length;
  if (!n) return;
  let lo = Math.min(...channel.min), hi = Math.max(...channel.max);
  if (!sensor) { const peak = Math.max(Math.abs(lo), Math.abs(hi), 1e-4); lo = -peak; hi = peak; }
  if (hi - lo < 1e-12) { lo -= 1; hi += 1; }
  const y = (v) => top + band * 0.05 + (1 - (v - lo) / (hi - lo)) * band * 0.9;
  g.fillStyle = sensor ? "#00798c" : "#2457c5";
  const columnWidth = width / n;
  if (columnWidth >= 3) {  // fewer samples than pixels: a line through them
    g.strokeStyle = g.fillStyle;
    g.lineWidth = Math.max(1, columnWidth / 8);
    g.beginPath();
    for (let i = 0; i < n; i += 1) g.lineTo((i + 0.5) * columnWidth, y((channel.min[i] + channel.max[i]) / 2));
    g.stroke();
    return;
  }
  for (let i = 0; i < n; i += 1) {
    const yTop = y(channel.max[i]);
    g.fillRect(i * columnWidth, yTop, Math.max(columnWidth, 1), Math.max(y(channel.min[i]) - yTop, 1));
  }
}

// ------------------------------------------------------------------------------------------ showing a clip

function buildTable() {
  const body = document.querySelector("#counts tbody");
  body.innerHTML = "";
  ui.info.classes.forEach((name, c) => {
    const row = document.createElement("tr");
    row.dataset.class = name;
    row.innerHTML = `<td><span class="swatch"></span><span class="name"></span></td><td class="count"></td>
      <td class="steps"><button data-step="-1">&minus;</button> <button data-step="1">+</button></td>
      <td class="key"></td><td class="proposal"></td>`;
    row.querySelector(".swatch").style.background = COLORS[c % COLORS.length];
    row.querySelector(".name").textContent = name;
    row.querySelector(".key").innerHTML = ui.info.tap_keys[name] ? `<kbd>${ui.info.tap_keys[name]}</kbd>` : "";
    row.addEventListener("click", (event) => {
      select(c);
      const step = event.target.dataset && event.target.dataset.step;
      if (step) setCount(c, Math.max(0, ui.counts[c] + Number(step)));
    });
    body.appendChild(row);
  });
}

async function show(index) {
  document.body.dataset.ready = "";
  ui.index = index;
  let clip;
  try {
    clip = await fetchClip(index);
  } catch (error) {
    say(`cannot load clip ${index + 1}: ${error.message}`, "error");
    return;
  }
  if (ui.index !== index) return;
  ui.clip = clip;
  const proposed = clip.proposal && clip.proposal.counts;
  ui.counts = clip.answer ? clip.answer.counts.slice()
    : ui.info.classes.map((_, c) => (proposed && proposed[c] !== null ? proposed[c] : 0));
  ui.taps = clip.answer ? clip.answer.taps.map((t) => t.slice()) : [];
  ui.saved = Boolean(clip.answer);
  ui.typing = false;
  ui.tapPass = ui.taps.length ? ui.pass + 1 : -1;  // a tap in the next pass replaces the saved taps
  select(0);
  $("clip-name").textContent = clip.name;
  $("view").hidden = clip.sensor;
  $("clip-window").textContent = `${clip.start_s.toFixed(2)}–${clip.end_s.toFixed(2)} s`;
  $("model").textContent = modelNote(clip);
  say(clip.no_taps ? `tapping is off for this recording: ${clip.no_taps}` : "");
  render();
  showProgress();
  if (!clip.sensor) {
    audio.src = `/api/clips/${index}/audio.wav`;
    audio.load();
  }
  player.playing = false;
  player.clockOffset = 0;
  player.fromStart();
  if (index + 1 < ui.info.clips && !ui.prefetched.has(index + 1)) {
    ui.prefetched.set(index + 1, ui.queue.then(() => api(`/api/clips/${index + 1}`)));
    ui.prefetched.get(index + 1).catch(() => ui.prefetched.delete(index + 1));
  }
  if (clip.proposal && clip.proposal.state === "pending") setTimeout(() => refreshProposal(index), 1000);
  document.body.dataset.clip = String(index);
  document.body.dataset.ready = "1";
}

function modelNote(clip) {
  if (!clip.proposal) return "";
  if (clip.proposal.state === "pending") return `model ${ui.info.model}: detecting…`;
  if (clip.proposal.state === "failed") return `model ${ui.info.model}: ${clip.proposal.message}`;
  return `model ${ui.info.model}: proposed counts shown in grey until you change or save them`;
}

async function refreshProposal(index) {
  if (ui.index !== index || ui.saved) return;
  let clip;
  try { clip = await api(`/api/clips/${index}`); } catch (error) { return; }
  if (ui.index !== index || ui.saved) return;
  ui.clip.proposal = clip.proposal;
  if (clip.proposal.state === "pending") { setTimeout(() => refreshProposal(index), 1000); return; }
  if (clip.proposal.counts) ui.counts = clip.proposal.counts.map((n) => (n === null ? 0 : n));
  $("model").textContent = modelNote(clip);
  render();
}

function render() {
  document.querySelectorAll("#counts tbody tr").forEach((row, c) => {
    row.classList.toggle("selected", c === ui.selected);
    const cell = row.querySelector(".count");
    cell.textContent = String(ui.counts[c]);
    cell.classList.toggle("proposed", !ui.saved && Boolean(ui.clip.proposal && ui.clip.proposal.counts));
    const proposal = ui.clip.proposal && ui.clip.proposal.counts ? ui.clip.proposal.counts[c] : null;
    row.querySelector(".proposal").textContent = proposal === null ? "" : String(proposal);
  });
  $("loop").classList.toggle("on", player.loop);
  $("rate").textContent = `${player.rate}×`;
  $("view").classList.toggle("on", ui.view === "spectrogram");
  drawLayer();
  draw();
}

function showProgress() {
  const info = ui.info;
  $("progress").textContent = `clip ${ui.index + 1} of ${info.clips} · ${info.answered} counted → ${info.output}`;
}

function showSaving() {
  const mark = $("saved");
  mark.textContent = ui.pending ? "saving…" : "all saved";
  mark.classList.toggle("busy", ui.pending > 0);
  document.body.dataset.pending = String(ui.pending);
}

function say(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = kind || "";
}

// ------------------------------------------------------------------------------------------ answering

function select(c) {
  ui.selected = (c + ui.info.classes.length) % ui.info.classes.length;
  ui.typing = false;
  render();
}

function setCount(c, value) {
  if (ui.taps.length) {
    ui.taps = [];
    say("taps dropped: the counts are typed now");
  }
  ui.counts[c] = Math.min(value, 99999);
  render();
  save();
}

function typeDigit(digit) {
  const c = ui.selected;
  setCount(c, ui.typing ? ui.counts[c] * 10 + digit : digit);
  ui.typing = true;
}

function tap(c) {
  if (ui.clip.no_taps) { say(`tapping is off for this recording: ${ui.clip.no_taps}`, "error"); return; }
  if (!player.playing) { say("play the clip (Space) and tap along while it plays"); return; }
  if (ui.tapPass !== ui.pass) {  // the first tap of a new pass: start afresh
    ui.taps = [];
    ui.counts = ui.info.classes.map(() => 0);
    ui.tapPass = ui.pass;
  }
  const label = ui.info.classes[c];
  ui.taps.push([Math.min(Math.max(player.time(), 0), player.length()), label]);
  ui.counts[c] += 1;
  ui.typing = false;
  render();
  save();
}

function untap() {
  const last = ui.taps.pop();
  if (!last) return;
  ui.counts[ui.info.classes.indexOf(last[1])] -= 1;
  render();
  save();
}

function next() {
  if (!ui.saved) save();
  const info = ui.info;
  if (ui.index + 1 < info.clips) show(ui.index + 1);
  else ui.queue.then(finish);
}

function finish() {
  if (ui.info.first_open < ui.info.clips) {
    show(ui.info.first_open).then(() => say("back to the first clip without a count"));
  } else {
    say(`All ${ui.info.clips} clips are counted; ${ui.info.output} is complete.`, "done");
    document.body.dataset.done = "1";
  }
}

function skip() {
  if (ui.index + 1 < ui.info.clips) show(ui.index + 1);
  else finish();
}

// ------------------------------------------------------------------------------------------ keys

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || !ui.clip) return;
  const key = event.key;
  const tapIndex = ui.info.classes.findIndex((name) => ui.info.tap_keys[name] === key.toLowerCase());
  if (/^[0-9]$/.test(key)) typeDigit(Number(key));
  else if (key === "+" || key === "=") setCount(ui.selected, ui.counts[ui.selected] + 1);
  else if (key === "-" || key === "_") setCount(ui.selected, Math.max(0, ui.counts[ui.selected] - 1));
  else if (key === "Tab") select(ui.selected + (event.shiftKey ? -1 : 1));
  else if (key === "ArrowDown") select(ui.selected + 1);
  else if (key === "ArrowUp") select(ui.selected - 1);
  else if (key === "Enter" || key === "ArrowRight") next();
  else if (key === "ArrowLeft") { if (ui.index > 0) show(ui.index - 1); }
  else if (key === "n") skip();
  else if (key === " ") player.fromStart();
  else if (key === "p") { if (player.playing) player.pause(); else player.fromStart(); }
  else if (key === "o") { player.loop = !player.loop; render(); }
  else if (key === "v") cycleRate();
  else if (key === "w") toggleView();
  else if (key === "Backspace") untap();
  else if (tapIndex >= 0) tap(tapIndex);
  else return;
  event.preventDefault();
}

function toggleView() {
  ui.view = ui.view === "waveform" ? "spectrogram" : "waveform";
  render();
}

function cycleRate() {
  player.rate = RATES[(RATES.indexOf(player.rate) + 1) % RATES.length];
  audio.playbackRate = player.rate;
  if (player.sensor() && player.playing) { player.clockOffset = player.time(); player.clockStart = performance.now(); }
  render();
}

document.addEventListener("keydown", onKey);
$("replay").addEventListener("click", () => player.fromStart());
$("pause").addEventListener("click", () => (player.playing ? player.pause() : player.fromStart()));
$("loop").addEventListener("click", () => { player.loop = !player.loop; render(); });
$("slower").addEventListener("click", cycleRate);
$("view").addEventListener("click", toggleView);
$("previous").addEventListener("click", () => { if (ui.index > 0) show(ui.index - 1); });
$("skip").addEventListener("click", skip);
$("next").addEventListener("click", next);
// closing the page: answers still waiting are sent anyway (keepalive requests outlive the page)
window.addEventListener("pagehide", () => {
  ui.waiting.splice(0).forEach((item) => fetch(`/api/clips/${item.index}/answer`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: item.body, keepalive: true }));
});
window.addEventListener("resize", () => { drawLayer(); draw(); });
// buttons give the focus back, so Space and Enter keep meaning replay and next
document.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => b.blur()));

api("/api/state").then((info) => {
  ui.info = info;
  if (!info.model) $("legend").textContent = "coloured lines: your taps · thin dark line: where playback is";
  buildTable();
  showSaving();
  if (info.first_open >= info.clips) {
    show(info.clips - 1).then(finish);
  } else {
    show(info.first_open);
  }
}).catch((error) => say(`cannot reach the annotation server: ${error.message}`, "error"));
