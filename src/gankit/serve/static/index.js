"use strict";
(async function () {
  const data = await api("/api/runs");
  const table = document.getElementById("runs");
  for (const r of data.runs) {
    const id = encodeURIComponent(r.id);
    table.append(el("tr", {},
      el("td", {}, r.name), el("td", {}, r.task + (r.kind === "export" ? " (export)" : "")),
      el("td", {}, r.apps.length ? el("a", {href: "/runs/" + id}, r.apps.join(", ")) : "-"),
      el("td", {}, r.kind === "run" ? el("a", {href: "/runs/" + id + "/progress"}, "curves, evaluation, grids")
                                    : "-")));
  }
  status(data.runs.length + " run(s) served");
})();
