// gankit serve: helpers every page shares. Plain JavaScript, no build step and nothing fetched from elsewhere.
"use strict";

// el("div", {class: "x"}, child, "text"): an element; text always goes in as text, never as HTML.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function img(src, attrs) { return el("img", Object.assign({src: src, alt: ""}, attrs || {})); }

// The API's answer as JSON; a 4xx/5xx shows its one-line message in the page's status bar and throws.
async function api(path, body) {
  const options = body === undefined ? {} :
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  let res;
  try { res = await fetch(path, options); }
  catch (e) { status("the server does not answer: " + e.message, true); throw e; }
  const data = await res.json().catch(() => ({error: "HTTP " + res.status}));
  if (!res.ok) { status(data.error || ("HTTP " + res.status), true); throw new Error(data.error); }
  return data;
}

function status(text, isError) {
  const bar = document.getElementById("status");
  if (!bar) return;
  bar.textContent = text;
  bar.className = isError ? "error" : "";
}

// The run id of a /runs/ID or /runs/ID/progress page.
function runId() { return decodeURIComponent(location.pathname.split("/")[2] || ""); }

// Calls fn(value) for the latest value only: one request in flight, the newest waiting one sent when it ends, so a
// dragged slider never queues a backlog of requests.
function latestOnly(fn) {
  let busy = false, pending = null, has = false;
  async function go(value) {
    if (busy) { pending = value; has = true; return; }
    busy = true;
    try { await fn(value); } catch (e) { /* shown in the status bar */ }
    busy = false;
    if (has) { has = false; const v = pending; pending = null; go(v); }
  }
  return go;
}

// A file chosen in an <input type=file> as a data: URL (the API takes uploads as base64 text).
function readFile(input) {
  return new Promise((resolve, reject) => {
    const file = input.files[0];
    if (!file) { reject(new Error("no file chosen")); return; }
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// A line plot as SVG: curves {name: [steps, values]}, drawn by hand (a few lines of SVG, where a charting library
// would be a download or a build step).
function plot(title, curves, opts) {
  opts = opts || {};
  const W = 460, H = 200, L = 48, R = 10, T = 22, B = 28;
  const names = Object.keys(curves).filter(k => curves[k] && curves[k][0].length);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "plot");
  svg.setAttribute("data-title", title);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  add("text", {x: L, y: 14, class: "title"}, title);
  if (!names.length) { add("text", {x: L, y: H / 2}, "no records yet"); return svg; }
  const xs = names.flatMap(k => curves[k][0]);
  const ys = names.flatMap(k => curves[k][1]).filter(v => v !== null);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = opts.ylim || [Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R), sy = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  add("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis"});
  add("line", {x1: L, y1: T, x2: L, y2: H - B, class: "axis"});
  add("text", {x: L, y: H - 8, class: "tick"}, x0);
  add("text", {x: W - R, y: H - 8, class: "tick end"}, x1);
  add("text", {x: L - 4, y: sy(y0), class: "tick end"}, +y0.toPrecision(3));
  add("text", {x: L - 4, y: sy(y1) + 8, class: "tick end"}, +y1.toPrecision(3));
  names.forEach((k, i) => {
    const [s, v] = curves[k];
    const pts = s.map((x, j) => v[j] === null ? null : `${sx(x).toFixed(1)},${sy(v[j]).toFixed(1)}`).filter(Boolean);
    add("polyline", {points: pts.join(" "), class: "line c" + (i % 4), "data-key": k});
    if (pts.length <= 30) pts.forEach(pt => { const [x, y] = pt.split(","); add("circle", {cx: x, cy: y, r: 2.5,
                                                                                  class: "c" + (i % 4)}); });
    add("text", {x: W - R - 4, y: T + 12 + 12 * i, class: "legend end c" + (i % 4)}, k);
  });
  return svg;
}
