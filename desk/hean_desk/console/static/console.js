// HEAN desk console: live fragments over Server-Sent Events, and the actions.
// The server renders every fragment (escaped); this script only swaps them in,
// so it never formats money (figures stay the engine's exact decimal strings).
"use strict";

(function () {
  const body = document.body;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const live = document.getElementById("live");
  let source = null;

  function setLive(state, text) {
    body.dataset.live = state;
    live.textContent = text;
    live.className = "live " + state;
  }

  function notice(text, kind) {
    const box = document.getElementById("notice");
    box.textContent = text;
    box.className = kind;
    box.hidden = false;
  }

  function upsertRows(data) {
    const tbody = document.querySelector("#engines tbody");
    if (!tbody) return;
    for (const [key, html] of Object.entries(data.upsert)) {
      const holder = document.createElement("tbody");
      holder.innerHTML = html;
      const row = holder.firstElementChild;
      const old = tbody.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
      if (old) {
        old.replaceWith(row);
      } else {
        const empty = tbody.querySelector("tr.empty");
        if (empty) empty.remove();
        const after = Array.from(tbody.rows).find((r) => r.dataset.key > key);
        tbody.insertBefore(row, after || null);
      }
    }
    for (const key of data.remove) {
      const old = tbody.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
      if (old) old.remove();
    }
  }

  function replacePanels(data) {
    for (const [panel, html] of Object.entries(data)) {
      const holder = document.getElementById("panel-" + panel);
      if (holder) holder.innerHTML = html;
    }
    body.dataset.updated = String(Date.now());
  }

  function connect() {
    if (source) source.close();
    const params = new URLSearchParams(window.location.search);
    if (body.dataset.engine) params.set("engine", body.dataset.engine);
    source = new EventSource("/events?" + params.toString());
    source.addEventListener("hello", () => setLive("open", "live"));
    source.addEventListener("rows", (ev) => upsertRows(JSON.parse(ev.data)));
    source.addEventListener("panels", (ev) => replacePanels(JSON.parse(ev.data)));
    source.addEventListener("refused", (ev) => notice(JSON.parse(ev.data).message, "refusal"));
    source.onerror = () => setLive("retrying", "reconnecting…");
  }

  // Actions: a confirmation that names the engine, then a POST with the console's token.
  const dialog = document.getElementById("confirm");
  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    const engine = button.dataset.engine;
    document.getElementById("confirm-text").textContent =
      `${action.charAt(0).toUpperCase() + action.slice(1)} engine ${engine}? ` +
      `The engine ${button.dataset.effect}.`;
    document.getElementById("confirm-ok").textContent = `${action} ${engine}`;
    dialog.dataset.action = action;
    dialog.dataset.engine = engine;
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "ok") return;
    const [namespace, name] = dialog.dataset.engine.split("/");
    const url = `/api/engines/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/` +
      encodeURIComponent(dialog.dataset.action);
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "X-Hean-Csrf": csrf },
        credentials: "same-origin",
      });
      const result = await response.json();
      notice(result.message, result.ok ? "ok" : "refusal");
    } catch (err) {
      notice(`The console could not be reached: ${err}`, "refusal");
    }
  });

  // The fills filter: the page's query string, so a reload or a shared link keeps it.
  const filter = document.getElementById("fills-filter");
  if (filter) {
    filter.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const params = new URLSearchParams();
      for (const [k, v] of new FormData(filter).entries()) if (v) params.set(k, v);
      const query = params.toString();
      history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
      connect(); // the stream sends every panel again, filtered
    });
  }

  connect();
})();
