// A run's explorer: every picture (and recording) comes from the server's API, which calls gankit's own functions;
// the page keeps only what the user chose (the kept samples and their z, an uploaded context). Images and recordings
// get the grid, sliders and paths; 2-D points a scatter plot; predict runs the futures of a sequence.
"use strict";
const RUN = runId(), BASE = "/api/runs/" + encodeURIComponent(RUN);
const S = {info: null, kept: [], selected: null, edited: null, between: null, slots: {A: [], B: [], C: []},
           amounts: [], mask: null, maskImage: null};
const $ = id => document.getElementById(id);
const show = id => $(id).classList.remove("hidden");
const weights = () => $("weights").value || "ema";
const sample = s => ({z: s.z, label: s.label});

async function start() {
  $("progress-link").href = "/runs/" + encodeURIComponent(RUN) + "/progress";
  S.info = await api(BASE);
  const info = S.info;
  $("title").textContent = info.name + " (" + info.task + ")";
  document.title = "gankit: " + info.name;
  if (info.apps.includes("explore")) setUpExplorer(info);
  if (info.apps.includes("scatter")) setUpScatter(info);
  if (info.apps.includes("futures")) setUpFutures(info);
  if (info.apps.includes("inpaint")) setUpInpaint();
  if (info.apps.includes("upscale")) { show("upscale-section"); $("upscale-file").onchange = upscaleUpload; }
  if (info.apps.includes("classify")) { show("classify-section"); $("classify-file").onchange = classifyUpload; }
  if (!info.apps.length) status("this run has no images to explore; its progress page shows its curves");
  else if (info.apps.includes("explore")) await reroll(false);
  else if (info.apps.includes("scatter")) await points(false);
  else if (info.apps.includes("futures")) await futuresGo(false);
  else status("ready");
}

function setUpExplorer(info) {
  ["sampling", "kept-section", "edit-section"].forEach(show);
  if (info.apps.includes("arithmetic")) show("arith-section");
  if (info.makes === "audio") {
    document.body.classList.add("audio");
    $("grid-note").textContent = "Clip i is clip i of gankit sample RUN --seed S --n N --out FOLDER (a .wav each); "
      + "its picture is its spectrogram. Click a picture to keep the clip.";
    ["edit-audio", "between-audio"].forEach(show);
  }
  if (info.c_dim) {
    show("class-label");
    info.class_names.slice(0, info.c_dim)
      .forEach((name, k) => $("cls").append(el("option", {value: k}, k + ": " + name)));
    for (let k = info.class_names.length; k < info.c_dim; k++) $("cls").append(el("option", {value: k}, k));
  }
  if (info.guides.length) {
    show("guide-label");
    info.guides.forEach(g => $("guide").append(el("option", {value: g}, g)));
  }
  if (info.weights.length > 1) {
    show("weights-label");
    info.weights.forEach(w => $("weights").append(
      el("option", {value: w}, w === "ema" ? "averaged G (EMA)" : "trained G")));
  } else $("weights").append(el("option", {value: "ema"}, "G"));
  info.directions.forEach((share, j) => {
    S.amounts.push(0);
    const input = el("input", {type: "range", min: -3, max: 3, step: 0.1, value: 0, id: "dir-" + j,
                              "data-direction": j});
    const value = el("span", {}, "0.0");
    input.addEventListener("input", () => { S.amounts[j] = +input.value; value.textContent = (+input.value).toFixed(1);
                                            edit(); });
    $("sliders").append(el("label", {}, "#" + (j + 1) + " " + (100 * share).toFixed(1) + "%", input, value));
  });
  $("reroll").onclick = () => reroll(true);
  for (const id of ["n", "seed", "cls", "guide", "weights"]) $(id).onchange = () => reroll(false);
  $("truncation").oninput = () => { $("truncation-value").textContent = (+$("truncation").value).toFixed(2); };
  $("truncation").onchange = () => reroll(false);
  $("t").oninput = () => { $("t-value").textContent = (+$("t").value).toFixed(2); walk(); };
  $("from").onchange = $("to").onchange = () => walk();
  $("reset-sliders").onclick = resetSliders;
  $("keep-edit").onclick = () => S.edited && keep(Object.assign({}, S.edited, {name: "edited"}));
  $("keep-between").onclick = () => S.between && keep(Object.assign({}, S.between, {name: "between"}));
  $("arith-go").onclick = arithmetic;
  $("arith-clear").onclick = () => { S.slots = {A: [], B: [], C: []}; drawSlots(); };
}

async function reroll(newSeed) {
  if (newSeed) $("seed").value = Math.floor(Math.random() * 2 ** 31);
  const body = {n: +$("n").value, seed: +$("seed").value, truncation: +$("truncation").value,
                guide: $("guide").value, weights: weights()};
  if ($("cls").value !== "") body.cls = +$("cls").value;
  status("drawing " + body.n + " samples...");
  const data = await api(BASE + "/samples", body);
  const grid = $("grid");
  grid.replaceChildren();
  for (const s of data.samples) {
    const caption = "seed " + s.seed + " #" + s.index + (s.label === null ? "" : " class " + s.label);
    const tile = el("div", {class: "tile", title: s.z ? "click to keep" : "guided samples have no z to keep"},
                    media(s, {"data-index": s.index}), el("div", {}, caption));
    tile.onclick = () => s.z ? keep(Object.assign({name: "#" + s.index + " s" + s.seed}, s))
                             : status("a D-guided sample has no z to keep; choose guide none", true);
    grid.append(tile);
  }
  status(data.samples.length + " samples, seed " + data.seed + (data.guide !== "none" ? ", guide " + data.guide : ""));
}

// A sample's picture, and for a recording its player (a WAV the server wrote; a click on it plays, not keeps).
function media(s, attrs) {
  return [img(s.image, attrs), s.audio ? player(s.audio) : null];
}

function player(src) {
  const audio = el("audio", {controls: true, preload: "metadata", src: src});
  audio.addEventListener("click", ev => ev.stopPropagation());
  return audio;
}

function keep(s) {
  S.kept.push({name: s.name, z: s.z, label: s.label, image: s.image, audio: s.audio || null});
  drawKept();
  if (S.kept.length === 1 || !S.selected) select(S.kept.length - 1);
}

function drawKept() {
  const box = $("kept");
  box.replaceChildren();
  if (!S.kept.length) box.append(el("span", {class: "muted"}, "none yet"));
  S.kept.forEach((s, i) => {
    const add = slot => el("button", {onclick: () => { S.slots[slot].push(s); drawSlots(); }, title: "add to " + slot,
                                      class: "to-" + slot}, slot);
    box.append(el("div", {class: "item" + (S.selected === s ? " selected" : "")},
      img(s.image, {onclick: () => select(i), class: "kept-image", title: "select for the sliders and inpainting"}),
      s.audio ? player(s.audio) : null,
      el("div", {}, s.name + (s.label === null ? "" : " c" + s.label)),
      el("div", {}, add("A"), add("B"), add("C"),
         el("button", {onclick: () => { S.kept.splice(i, 1); drawKept(); }, title: "remove"}, "x"))));
  });
  for (const id of ["from", "to"]) {
    const sel = $(id), was = sel.value;
    sel.replaceChildren(...S.kept.map((s, i) => el("option", {value: i}, i + ": " + s.name)));
    if (was !== "" && +was < S.kept.length) sel.value = was;
  }
  if (S.kept.length > 1 && $("to").value === $("from").value) $("to").value = S.kept.length - 1;
}

function select(i) {
  S.selected = S.kept[i];
  drawKept();
  resetSliders();
  if (S.info.apps.includes("inpaint")) loadMaskImage(S.selected.image);
}

function resetSliders() {
  S.amounts = S.amounts.map(() => 0);
  document.querySelectorAll("#sliders input").forEach(input => { input.value = 0; });
  document.querySelectorAll("#sliders span").forEach(span => { span.textContent = "0.0"; });
  edit();
}

const edit = latestOnly(async () => {
  if (!S.selected) return;
  const data = await api(BASE + "/decode", Object.assign(sample(S.selected), {amounts: S.amounts, weights: weights()}));
  S.edited = data;
  $("edit-image").src = data.image;
  if (data.audio) $("edit-audio").src = data.audio;
});

const walk = latestOnly(async () => {
  if (S.kept.length < 2) { status("keep two samples to walk between them"); return; }
  const a = S.kept[+$("from").value], b = S.kept[+$("to").value];
  const data = await api(BASE + "/between", {a: sample(a), b: sample(b), t: +$("t").value, weights: weights()});
  S.between = data;
  $("between-image").src = data.image;
  if (data.audio) $("between-audio").src = data.audio;
});

function drawSlots() {
  for (const name of ["A", "B", "C"]) {
    $("slot-" + name).replaceChildren(...S.slots[name].map(s => img(s.image, {title: s.name})));
  }
}

async function arithmetic() {
  const body = {weights: weights(), neighbours: 4};
  for (const name of ["A", "B", "C"]) {
    if (!S.slots[name].length) { status("add one or more kept samples to " + name, true); return; }
    body[name.toLowerCase()] = S.slots[name].map(sample);
  }
  const data = await api(BASE + "/arithmetic", body);
  const term = g => el("div", {class: "term", "data-group": g.name}, img(g.mean, {class: "pix"}),
                       el("div", {class: "members"}, g.members.map(m => img(m))), el("div", {}, "mean of " + g.name));
  const [A, B, C] = data.groups;
  const result = el("div", {class: "term", id: "arith-result"}, img(data.result, {class: "pix"}),
                    el("div", {class: "members"}, data.neighbours.map(m => img(m))), el("div", {}, "result"));
  result.onclick = () => keep({name: "A-B+C", z: data.result_z, label: data.result_label, image: data.result});
  $("arith-eq").replaceChildren(term(A), el("span", {class: "op"}, "-"), term(B), el("span", {class: "op"}, "+"),
                                term(C), el("span", {class: "op"}, "="), result);
  status("A - B + C: click the result to keep it");
}

// --- inpainting: the mask is drawn at the model's resolution (1 known, 0 missing) over the image ---
function setUpInpaint() {
  show("inpaint-section");
  const canvas = $("mask-canvas"), [, h, w] = S.info.shape;
  canvas.width = w; canvas.height = h;
  S.mask = new Uint8Array(w * h).fill(1);
  let down = false;
  const paint = ev => {
    const r = canvas.getBoundingClientRect(), b = +$("brush").value || 1;
    const cx = Math.floor((ev.clientX - r.left) / r.width * w), cy = Math.floor((ev.clientY - r.top) / r.height * h);
    for (let y = cy - (b >> 1); y < cy - (b >> 1) + b; y++)
      for (let x = cx - (b >> 1); x < cx - (b >> 1) + b; x++)
        if (x >= 0 && y >= 0 && x < w && y < h) S.mask[y * w + x] = 0;
    drawMask();
  };
  canvas.addEventListener("mousedown", ev => { down = true; paint(ev); });
  canvas.addEventListener("mousemove", ev => { if (down) paint(ev); });
  window.addEventListener("mouseup", () => { down = false; });
  $("mask-clear").onclick = () => { S.mask.fill(1); drawMask(); };
  $("mask-center").onclick = () => {
    for (let y = h >> 2; y < (h >> 2) + (h >> 1); y++)
      for (let x = w >> 2; x < (w >> 2) + (w >> 1); x++) S.mask[y * w + x] = 0;
    drawMask();
  };
  $("inpaint-file").onchange = async () => { S.upload = await readFile($("inpaint-file")); loadMaskImage(S.upload); };
  $("inpaint-go").onclick = inpaintGo;
}

function loadMaskImage(src) {
  const im = new Image();
  im.onload = () => { S.maskImage = im; drawMask(); };
  im.src = src;
  if (src !== S.upload) S.upload = null;
}

function drawMask() {
  const canvas = $("mask-canvas"), ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, w, h);
  if (S.maskImage) ctx.drawImage(S.maskImage, 0, 0, w, h);
  ctx.fillStyle = "rgba(229, 57, 53, 0.85)";
  for (let i = 0; i < S.mask.length; i++) if (!S.mask[i]) ctx.fillRect(i % w, Math.floor(i / w), 1, 1);
}

async function inpaintGo() {
  const body = {mask: Array.from(S.mask), weights: weights()};
  if (S.upload) body.image = S.upload;
  else if (S.selected) Object.assign(body, sample(S.selected));
  else { status("keep a sample (or upload an image) to inpaint", true); return; }
  status("searching z for the known pixels...");
  const data = await api(BASE + "/inpaint", body);
  const fig = (src, caption, id) => el("figure", {id: id}, img(src, {class: "big"}), el("figcaption", {}, caption));
  $("inpaint-out").replaceChildren(fig(data.masked, "masked input"), fig(data.fill, "G(z)"),
                                   fig(data.completed, "completed", "inpaint-completed"));
  status("filled");
}

// --- the applications of sr and ssl runs: an uploaded image ---
async function upscaleUpload() {
  const data = await api(BASE + "/upscale", {image: await readFile($("upscale-file"))});
  const fig = (src, caption, id) => el("figure", {id: id}, img(src, {class: "big"}), el("figcaption", {}, caption));
  $("upscale-out").replaceChildren(fig(data.input, "input, " + data.size + " px"), fig(data.bicubic, "bicubic"),
                                   fig(data.G, "G, x" + data.scale, "upscaled"));
  status("upscaled");
}

async function classifyUpload() {
  const data = await api(BASE + "/classify", {image: await readFile($("classify-file"))});
  const rows = data.probabilities.map(p => el("tr", {}, el("td", {}, p.name),
    el("td", {style: "text-align:left"}, el("span", {class: "bar", style: "width:" + (200 * p.p).toFixed(0) + "px"}),
       " " + (100 * p.p).toFixed(1) + "%")));
  $("classify-out").replaceChildren(img(data.input, {class: "big"}),
    el("table", {id: "probabilities"}, el("tr", {}, el("th", {}, "class"), el("th", {}, "probability")), rows));
  status("classified");
}

// --- 2-D points: a scatter plot of G's points over the real ones, drawn by the server with the run's own plot ---
function setUpScatter(info) {
  show("scatter-section");
  if (info.guides.length) {
    show("points-guide-label");
    info.guides.forEach(g => $("points-guide").append(el("option", {value: g}, g)));
  }
  $("points-reroll").onclick = () => points(true);
  for (const id of ["points-n", "points-seed", "points-guide"]) $(id).onchange = () => points(false);
}

async function points(newSeed) {
  if (newSeed) $("points-seed").value = Math.floor(Math.random() * 2 ** 31);
  const body = {n: +$("points-n").value, seed: +$("points-seed").value, guide: $("points-guide").value};
  status("drawing " + body.n + " points...");
  const data = await api(BASE + "/scatter", body);
  $("scatter-image").src = data.image;
  status(data.n + " points, seed " + data.seed + (data.guide !== "none" ? ", guide " + data.guide : ""));
}

// --- predict runs: K futures of a held-out sequence or of an uploaded context, as GIFs ---
function setUpFutures(info) {
  show("futures-section");
  $("futures-k").max = info.max_futures;
  if (info.held_out) {
    $("seq-index").max = info.held_out - 1;
    $("held-count").textContent = "0 to " + (info.held_out - 1);
  } else $("held-count").textContent = info.held_out_error || "none here: upload a context";
  $("futures-reroll").onclick = () => futuresGo(true);
  for (const id of ["seq-index", "futures-k", "futures-seed"]) $(id).onchange = () => futuresGo(false);
  $("context-file").onchange = async () => {
    S.context = await readFile($("context-file"));
    show("context-clear");
    await futuresGo(false);
  };
  $("context-clear").onclick = () => {
    S.context = null;
    $("context-file").value = "";
    $("context-clear").classList.add("hidden");
    futuresGo(false);
  };
}

async function futuresGo(newSeed) {
  if (newSeed) $("futures-seed").value = Math.floor(Math.random() * 2 ** 31);
  if (!S.context && !S.info.held_out) { status("upload a context .npz to see its futures", true); return; }
  const body = {index: +$("seq-index").value, k: +$("futures-k").value, seed: +$("futures-seed").value};
  if (S.context) body.context = S.context;
  status("sampling " + body.k + " futures...");
  const data = await api(BASE + "/futures", body);
  const fig = (src, caption, attrs) => el("figure", attrs, img(src, {class: "gif"}), el("figcaption", {}, caption));
  const out = [fig(data.context, "context", {id: "futures-context"})];
  if (data.truth) out.push(fig(data.truth, "true future", {id: "futures-truth"}));
  data.futures.forEach((gif, j) => out.push(fig(gif, "future " + (j + 1), {class: "future"})));
  $("futures-out").replaceChildren(...out);
  status(data.k + " futures of " + (data.source === "upload" ? "uploaded" : "held-out") + " sequence " + data.index
         + ", seed " + data.seed);
}

start().catch(e => console.error(e));
