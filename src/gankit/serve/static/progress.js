// A run's progress, read again every few seconds while it trains: curves, the latest evaluation, sample grids.
"use strict";
const RUN = runId(), BASE = "/api/runs/" + encodeURIComponent(RUN);
const REFRESH_MS = 5000;
const shownGrids = new Set();

function pick(curves, keys) {
  const out = {};
  for (const k of keys) if (curves[k]) out[k] = curves[k];
  return out;
}

function evaluationTable(ev) {
  const fmt = v => v === null || v === undefined ? "" : (Number.isInteger(v) ? v : (+v).toPrecision(4));
  const table = el("table", {id: "eval-table"},
    el("tr", {}, el("th", {}, "metric"), el("th", {}, "model"), el("th", {}, "floor (real vs real)")),
    ev.rows.map(r => el("tr", {}, el("td", {}, r.metric), el("td", {}, fmt(r.value)), el("td", {}, fmt(r.floor)))));
  return [table, el("p", {class: "muted"}, "step " + ev.step + ", " + ev.n + " samples, features " + ev.features +
    " (eval/" + ev.file + "; " + ev.count + " evaluation(s)). The floor is the same metric with real data in place " +
    "of generated samples, at the same sample count.")];
}

async function refresh() {
  const p = await api(BASE + "/progress");
  $title(p);
  const c = p.curves;
  const losses = pick(c, ["loss_d", "loss_g"].concat(c.penalty && c.penalty[1].some(v => v) ? ["penalty"] : []));
  const plots = [plot("losses", losses), plot("D(x) and D(G(z))", pick(c, ["D(x)", "D(G(z))"]), {ylim: [0, 1]})];
  // an evaluation metric's own curve (its floor and the sample count are in the table below)
  const evals = Object.keys(c).filter(k => k.startsWith("eval/") && !/(_floor|_std|n_samples)$/.test(k)).sort();
  for (const k of evals) plots.push(plot(k, pick(c, [k])));
  for (const k of Object.keys(c).filter(k => !k.startsWith("eval/") &&
                                        !["loss_d", "loss_g", "penalty", "D(x)", "D(G(z))"].includes(k)).sort())
    plots.push(plot(k, pick(c, [k])));
  document.getElementById("curves").replaceChildren(...plots);
  document.getElementById("summary").textContent = p.records + " records" +
    (p.last_step === null ? "" : ", last at step " + p.last_step) +
    (p.resumes.length ? "; resumed at step " + p.resumes.join(", ") : "") +
    (p.skipped ? "; " + p.skipped + " damaged line(s) of metrics.jsonl skipped" : "");
  if (p.evaluation) document.getElementById("evaluation").replaceChildren(...evaluationTable(p.evaluation));
  const grids = document.getElementById("grids");
  for (const step of p.grids) {
    if (shownGrids.has(step)) continue;
    shownGrids.add(step);
    grids.append(el("figure", {"data-step": step}, img(BASE + "/grids/" + step + ".png"),
                    el("figcaption", {}, "step " + step)));
  }
  status("updated " + new Date(p.time * 1000).toLocaleTimeString() + "; refreshes every " + REFRESH_MS / 1000 + " s");
}

function $title(p) {
  document.getElementById("title").textContent = p.name + " (" + p.task + "): progress";
  document.getElementById("explore-link").href = "/runs/" + encodeURIComponent(RUN);
}

async function loop() {
  try { await refresh(); } catch (e) { /* shown in the status bar; try again */ }
  setTimeout(loop, REFRESH_MS);
}
loop();
