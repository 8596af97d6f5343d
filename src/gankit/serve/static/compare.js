// Several runs side by side: their latest evaluations (a row per metric) and their latest sample grids.
"use strict";
(async function () {
  const data = await api("/api/compare");
  const wanted = new URLSearchParams(location.search).get("runs");
  const runs = wanted ? data.runs.filter(r => wanted.split(",").includes(r.id)) : data.runs;
  const metrics = [];
  for (const r of runs) for (const row of (r.evaluation ? r.evaluation.rows : []))
    if (!metrics.includes(row.metric)) metrics.push(row.metric);
  const fmt = v => v === null || v === undefined ? "" : (Number.isInteger(v) ? String(v) : (+v).toPrecision(4));
  const cell = (r, m) => {
    const row = r.evaluation && r.evaluation.rows.find(x => x.metric === m);
    if (!row) return el("td", {}, "");
    const floor = row.floor === null || row.floor === undefined ? "" : " (" + fmt(row.floor) + ")";
    return el("td", {}, fmt(row.value) + floor);
  };
  const table = el("table", {id: "compare-table"},
    el("tr", {}, el("th", {}, "metric"),
       runs.map(r => el("th", {}, el("a", {href: "/runs/" + encodeURIComponent(r.id) + "/progress"}, r.name)))),
    el("tr", {}, el("td", {}, "step"),
       runs.map(r => el("td", {}, r.evaluation ? fmt(r.evaluation.step) : "no evaluation"))),
    metrics.map(m => el("tr", {}, el("td", {}, m), runs.map(r => cell(r, m)))));
  document.getElementById("table").replaceChildren(table);
  document.getElementById("grids").replaceChildren(...runs.map(r => el("figure", {"data-run": r.id},
    r.grid === null ? el("p", {class: "muted"}, "no grid yet")
                    : img("/api/runs/" + encodeURIComponent(r.id) + "/grids/" + r.grid + ".png"),
    el("figcaption", {}, r.name + (r.grid === null ? "" : ", step " + r.grid)))));
  status(runs.length + " run(s)");
})();
