// animegen serve: the page. Each picture has one request in flight at most; a newer input replaces the one
// waiting (latest wins), so the picture follows typing and the slider without a queue building up.
"use strict";

const $ = (id) => document.getElementById(id);
const config = { models: [], samplers: {}, limits: {} };

// Run `fn` with the newest arguments only: while one call runs, later calls keep just their last arguments.
function latest(fn) {
  let running = false, next = null;
  return function (...args) {
    next = args;
    if (running) return;
    running = true;
    (async () => {
      while (next) {
        const now = next;
        next = null;
        try { await fn(...now); } catch (err) { console.warn(err); }
      }
      running = false;
    })();
  };
}

async function fetchJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// The model and sampler settings every picture shares, as query parameters.
function samplerParams() {
  const params = { model: $("model").value };
  const sampler = $("sampler").value, steps = $("steps").value, eta = $("eta").value;
  if (sampler) params.sampler = sampler;
  if (steps !== "" && !$("steps").disabled) params.steps = steps;
  if (eta !== "" && !$("eta").disabled) params.eta = eta;
  const guidance = $("guidance").value;
  if (guidance !== "" && !$("guidance").disabled) params.guidance = guidance;
  return params;
}

// Fetch a PNG into an <img>; the element's data-state says loading | ready | error, data-key what it shows.
async function showPicture(img, url, params, timeEl, errorEl) {
  const key = new URLSearchParams(params).toString();
  img.dataset.state = "loading";
  const response = await fetch(`${url}?${key}`);
  if (!response.ok) {
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    errorEl.textContent = body.error;
    img.dataset.state = "error";
    return;
  }
  const blob = await response.blob();
  const old = img.src;
  await new Promise((done) => { img.onload = done; img.onerror = done; img.src = URL.createObjectURL(blob); });
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  errorEl.textContent = "";
  const timing = /dur=([\d.]+)/.exec(response.headers.get("Server-Timing") || "");
  if (timeEl && timing) timeEl.textContent = `drawn in ${(timing[1] / 1000).toFixed(2)} s`;
  img.dataset.key = key;
  img.dataset.state = "ready";
}

const draw = latest(() => showPicture($("draw-grid"), "/api/draw",
  { ...samplerParams(), seed: $("draw-seed").value, num: $("draw-num").value }, $("draw-time"), $("draw-error")));

const explore = latest(() => showPicture($("explore-img"), "/api/explore",
  { ...samplerParams(), a: $("explore-a").value, b: $("explore-b").value, t: $("explore-t").value },
  $("explore-time"), $("explore-error")));

// --- Watch: the Q1 frames as a sprite sheet (row 0: x_t, row 1: predicted x0), played on two canvases
const watch = { sheet: null, titles: [], size: 64, timer: null };

function showFrame(i) {
  if (!watch.sheet) return;
  for (const [id, row] of [["watch-xt", 0], ["watch-x0", 1]]) {
    const ctx = $(id).getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(watch.sheet, i * watch.size, row * watch.size, watch.size, watch.size, 0, 0, 192, 192);
  }
  $("watch-frame").value = i;
  $("watch-title").textContent = `${watch.titles[i]} (frame ${i + 1} of ${watch.titles.length})`;
}

const loadWatch = latest(async () => {
  const params = new URLSearchParams({ ...samplerParams(), seed: $("watch-seed").value, frames: $("watch-frames").value });
  $("watch").dataset.state = "loading";
  try {
    const frames = await fetchJSON(`/api/watch?${params}`);
    const sheet = new Image();
    await new Promise((done) => { sheet.onload = done; sheet.src = frames.sprite; });
    Object.assign(watch, { sheet, titles: frames.titles, size: frames.size });
    $("watch-frame").max = frames.frames - 1;
    $("watch-error").textContent = "";
    showFrame(frames.frames - 1);
    $("watch").dataset.state = "ready";
  } catch (err) {
    $("watch-error").textContent = err.message;
    $("watch").dataset.state = "error";
  }
});

function play() {
  clearInterval(watch.timer);
  if ($("watch-play").textContent === "Pause") { $("watch-play").textContent = "Play"; return; }
  $("watch-play").textContent = "Pause";
  let i = 0;
  watch.timer = setInterval(() => {
    showFrame(i);
    i += 1;
    if (i >= watch.titles.length) { clearInterval(watch.timer); $("watch-play").textContent = "Play"; }
  }, 250);
}

// --- Download and Score: one long job on the server; its progress is polled
async function pollJob(bar, phaseEl) {
  for (;;) {
    const job = await fetchJSON("/api/job");
    bar.classList.remove("idle");
    if (job.total) { bar.max = job.total; bar.value = job.done; } else bar.removeAttribute("value");
    if (phaseEl) phaseEl.textContent = `${job.phase} (${job.done}/${job.total})`;
    if (job.state !== "running") return job;
    await new Promise((done) => setTimeout(done, 500));
  }
}

async function startJob(url, body, bar, phaseEl, resultEl, show) {
  resultEl.textContent = "";
  try {
    await fetchJSON(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const job = await pollJob(bar, phaseEl);
    if (job.state === "done") resultEl.innerHTML = show(job.result);
    else resultEl.textContent = `error: ${job.error}`;
    resultEl.dataset.state = job.state;
  } catch (err) {
    resultEl.textContent = `error: ${err.message}`;
    resultEl.dataset.state = "error";
  }
}

function download() {
  const body = { ...samplerParams(), num: 1000 };
  startJob("/api/download", body, $("download-progress"), $("download-phase"), $("download-result"), (r) =>
    `${r.num} faces in ${escapeHTML(r.folder)} and <a href="/api/download/images.tgz" download>images.tgz</a> ` +
    `(${r.tgz_bytes.toLocaleString()} bytes, JPEG quality ${r.jpeg_quality}) beside it`);
}

function score() {
  const source = $("score-source").value;
  const body = { source };
  if (source === "folder") body.folder = $("score-folder").value;
  if (source === "model") Object.assign(body, samplerParams(), { num: $("score-num").value });
  startJob("/api/score", body, $("score-progress"), null, $("score-result"), (r) => escapeHTML(`${r.images}\n\n${r.table}`));
}

// --- Runs: read every 2 s while the page is open
function chart(curve) {
  const W = 300, H = 150, pad = 4;
  const steps = curve.step, n = steps.length;
  if (n < 2) return "";
  const x = (s) => pad + (W - 2 * pad) * (s - steps[0]) / Math.max(1, steps[n - 1] - steps[0]);
  const line = (values, log) => {
    const v = values.map((y) => (y == null || (log && y <= 0)) ? null : (log ? Math.log10(y) : y));
    const ok = v.filter((y) => y !== null);
    if (!ok.length) return "";
    const lo = Math.min(...ok), hi = Math.max(...ok), span = hi - lo || 1;
    return v.map((y, i) => y === null ? "" : `${x(steps[i]).toFixed(1)},${(H - pad - (H - 2 * pad) * (y - lo) / span).toFixed(1)}`)
      .filter(Boolean).join(" ");
  };
  const loss = curve.loss.filter((y) => y > 0);
  return `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="loss and lr">` +
    `<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${line(curve.loss, true)}"/>` +
    `<polyline fill="none" stroke="#2ca02c" stroke-width="1" points="${line(curve.lr, false)}"/>` +
    `<text x="6" y="12" font-size="10" fill="#1f77b4">loss (log) ${Math.min(...loss).toPrecision(3)}–${Math.max(...loss).toPrecision(3)}</text>` +
    `<text x="${W - 6}" y="12" font-size="10" fill="#2ca02c" text-anchor="end">lr</text></svg>`;
}

function escapeHTML(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function runFacts(run) {
  const parts = [`${escapeHTML(run.preset || run.kind)}`, `<span class="run-step">step ${run.step ?? "–"}</span>` +
    (run.planned_steps ? ` of ${run.planned_steps}` : ""), `<span class="state-${run.state}">${run.state}</span>`];
  if (run.img_per_s != null) parts.push(`${run.img_per_s} img/s`);
  if (run.checkpoint) parts.push(`checkpoint ${escapeHTML(run.checkpoint)}`);
  if (run.state === "training" && run.planned_end) {
    const end = new Date(run.planned_end * 1000);
    parts.push(`ends ≈ ${end.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`);
  }
  return parts.join(" · ");
}

function renderRun(run) {
  let card = document.querySelector(`.run[data-name="${CSS.escape(run.name)}"]`);
  if (!card) {
    card = document.createElement("div");
    card.className = "run";
    card.dataset.name = run.name;
    card.innerHTML = `<h3>${escapeHTML(run.name)}</h3><div class="facts"></div>` +
      `<div class="body"><div class="chart"></div><figure><img alt="newest sample grid"><figcaption></figcaption>` +
      `</figure></div><button class="use">draw with it</button>`;
    card.querySelector(".use").onclick = () => useModel(`run:${run.name}`);
    $("runs").appendChild(card);
  }
  card.dataset.step = run.step ?? "";
  if (run.error) {  // e.g. a log linked from outside the runs folder: named, not read
    card.querySelector(".facts").textContent = run.error;
    card.querySelector(".use").disabled = true;
    return;
  }
  card.querySelector(".facts").innerHTML = runFacts(run);
  card.querySelector(".chart").innerHTML = chart(run.curve);
  const newest = run.samples[run.samples.length - 1];
  const img = card.querySelector("img");
  if (newest && img.dataset.file !== newest) {
    img.src = `/api/runs/sample?${new URLSearchParams({ name: run.name, file: newest })}`;
    img.dataset.file = newest;
    card.querySelector("figcaption").textContent = `newest samples: ${newest}`;
  }
  card.querySelector(".use").disabled = !run.checkpoint;
}

async function refreshRuns() {
  try {
    const listing = await fetchJSON("/api/runs");
    $("runs-root").textContent = `under ${listing.root}` + (listing.runs.length ? "" : ": no runs yet");
    listing.runs.forEach(renderRun);
    const names = new Set(listing.runs.map((r) => r.name));
    for (const card of document.querySelectorAll(".run")) if (!names.has(card.dataset.name)) card.remove();
  } catch (err) {
    $("runs-root").textContent = `could not read the runs: ${err.message}`;
  }
  setTimeout(refreshRuns, 2000);
}

function useModel(id) {
  const select = $("model");
  if (![...select.options].some((o) => o.value === id)) select.add(new Option(id, id));
  select.value = id;
  syncSamplerInputs();
  redrawAll();
}

function redrawAll() { draw(); explore(); loadWatch(); }

function syncSamplerInputs() {
  const options = config.samplers[$("sampler").value];
  $("steps").disabled = options !== undefined && !options.includes("steps");
  $("eta").disabled = options !== undefined && !options.includes("eta");
  // only a model that ships with a guide takes a weight; the page shows the one it samples with
  const model = config.models.find((m) => m.id === $("model").value);
  const guided = model !== undefined && model.guidance !== undefined;
  $("guidance").disabled = !guided;
  $("guidance").placeholder = guided ? `own: ${model.guidance}` : "none";
}

async function start() {
  Object.assign(config, await fetchJSON("/api/config"));
  for (const m of config.models) $("model").add(new Option(m.label, m.id));
  $("model").value = config.default_model;
  for (const name of Object.keys(config.samplers)) $("sampler").add(new Option(name, name));
  $("draw-num").max = config.limits.max_grid;
  $("status").textContent = `hand-in folder: ${config.out}` + (config.real ? `; real faces: ${config.real}` : "");
  $("guidance").max = config.limits.max_guidance;
  // a <select> reports a choice as "change" (some browsers, and WebDriver, send no "input" for it)
  for (const id of ["model", "sampler"]) $(id).addEventListener("change", () => { syncSamplerInputs(); redrawAll(); });
  for (const id of ["steps", "eta", "guidance"]) $(id).addEventListener("input", () => { syncSamplerInputs(); redrawAll(); });
  for (const id of ["draw-seed", "draw-num"]) $(id).addEventListener("input", draw);
  for (const id of ["explore-a", "explore-b", "explore-t"]) $(id).addEventListener("input", explore);
  for (const id of ["watch-seed", "watch-frames"]) $(id).addEventListener("input", loadWatch);
  $("watch-frame").addEventListener("input", () => showFrame(Number($("watch-frame").value)));
  $("watch-play").addEventListener("click", play);
  $("download-btn").addEventListener("click", download);
  $("score-btn").addEventListener("click", score);
  $("download-progress").classList.add("idle");
  $("score-progress").classList.add("idle");
  syncSamplerInputs();
  redrawAll();
  refreshRuns();
}

document.addEventListener("DOMContentLoaded", start);
