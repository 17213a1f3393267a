// Live counts for the convoy dashboard: polls the JSON endpoint and updates the page in place.
// Elements opt in with data-stat="<queue>:<field>" (a count), data-text (text as it comes), data-chart="<queue>:<outcome>",
// data-chart-text="<queue>:<field of the chart>", data-paused-badge and data-throttled-badge="<queue>"; the workers table is rebuilt from a <template> row.
// Nothing is written as HTML: every value goes in through textContent or an attribute.
"use strict";
(function () {
  const root = document.getElementById("convoy-live");
  if (!root) return;
  const every = Number(root.dataset.every) * 1000;
  const status = root.querySelector("[data-live-status]");
  const toggle = root.querySelector("[data-live-toggle]");
  const numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);
  let paused = false;
  let timer = null;

  function apply(data) {
    const queues = new Map(data.queues.map((queue) => [queue.name, queue]));
    document.querySelectorAll("[data-stat]").forEach((element) => {
      const [name, field] = element.dataset.stat.split(":");
      const queue = queues.get(name);
      if (queue && field in queue) element.textContent = numbers.format(queue[field]);
    });
    document.querySelectorAll("[data-text]").forEach((element) => {
      const [name, field] = element.dataset.text.split(":");
      const queue = queues.get(name);
      if (queue && field in queue) element.textContent = queue[field];
    });
    document.querySelectorAll("[data-chart]").forEach((line) => {
      const [name, outcome] = line.dataset.chart.split(":");
      const queue = queues.get(name);
      if (queue) line.setAttribute("points", queue.chart[outcome]);
    });
    document.querySelectorAll("[data-chart-text]").forEach((text) => {
      const [name, field] = text.dataset.chartText.split(":");
      const chart = (queues.get(name) || {}).chart;
      if (chart && field in chart) text.textContent = chart[field];
    });
    document.querySelectorAll("[data-chart-title]").forEach((title) => {
      const chart = (queues.get(title.dataset.chartTitle) || {}).chart;
      if (chart) title.textContent = chart.title;
    });
    document.querySelectorAll("[data-paused-badge]").forEach((badge) => {
      const queue = queues.get(badge.dataset.pausedBadge);
      if (queue) badge.hidden = !queue.paused;
    });
    document.querySelectorAll("[data-throttled-badge]").forEach((badge) => {
      const queue = queues.get(badge.dataset.throttledBadge);
      if (queue) badge.hidden = !queue.throttled;
    });
    const banner = document.querySelector(".convoy-paused");
    if (banner) {
      banner.hidden = data.paused_queues.length === 0;
      banner.querySelector("[data-paused-list]").textContent = data.paused_queues.join(", ");
    }
    renderWorkers(data.workers);
  }

  function renderWorkers(workers) {
    const body = document.getElementById("convoy-workers");
    if (!body) return;
    const row = document.getElementById("convoy-worker-row").content.firstElementChild;
    const empty = document.getElementById("convoy-no-workers").content.firstElementChild;
    body.replaceChildren(...(workers.length ? workers.map((worker) => {
      const copy = row.cloneNode(true);
      copy.className = `convoy-worker ${worker.display.status}`;
      copy.querySelectorAll("[data-field]").forEach((cell) => {
        cell.textContent = worker.display[cell.dataset.field];
      });
      copy.querySelector(".convoy-badge").className = `convoy-badge ${worker.display.status}`;
      return copy;
    }) : [empty.cloneNode(true)]));
  }

  async function refresh() {
    timer = null;
    if (paused || document.hidden) return;
    try {
      const response = await fetch(root.dataset.url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      apply(await response.json());
      root.classList.remove("offline");
      status.textContent = `Live: updated ${new Date().toLocaleTimeString()}.`;
    } catch (error) {
      root.classList.add("offline");
      status.textContent = `Live updates failed (${error.message}); retrying.`;
    }
    schedule();
  }

  function schedule() {
    if (!paused && timer === null) timer = setTimeout(refresh, every);
  }

  toggle.hidden = false;
  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.textContent = paused ? "Resume updates" : "Pause updates";
    status.textContent = paused ? "Live updates paused." : "Live: resuming…";
    if (paused) {
      clearTimeout(timer);
      timer = null;
    } else {
      refresh();
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !paused && timer === null) refresh();
  });
  schedule();
})();
