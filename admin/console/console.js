// The pluginhost web console. It holds no data of its own: every datum comes
// from the admin API, with the token the operator typed, kept in this tab's
// sessionStorage. No inline script, nothing from another origin (see the
// Content-Security-Policy the console is served with).
"use strict";

(function () {
  const API = document.querySelector('meta[name="pluginhost-admin-api"]').content;
  const TOKEN_KEY = "pluginhost.console.token";
  const POLL_MS = 3000;

  const $ = (sel) => document.querySelector(sel);

  // el builds an element: el("p", {class: "x"}, "text", child, ...). Text is
  // always set as text, never parsed as HTML.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // ---- the API -------------------------------------------------------

  class Unauthorized extends Error {}

  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { "Authorization": "Bearer " + (sessionStorage.getItem(TOKEN_KEY) || "") };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(API + path, init);
    if (res.status === 401) throw new Unauthorized("the token was refused");
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) {
      throw new APIError(res.status, (data && data.error) || (res.status + " " + res.statusText));
    }
    return data;
  }

  // optional is api for a route the API may not have yet: null on 404.
  async function optional(path) {
    try { return await api("GET", path); } catch (e) {
      if (e instanceof APIError && (e.status === 404 || e.status === 405)) return null;
      throw e;
    }
  }

  // ---- login ------------------------------------------------------------

  function showLogin(message) {
    stopPolling();
    sessionStorage.removeItem(TOKEN_KEY);
    $("#app").hidden = true;
    $("#logout").hidden = true;
    $("#login-view").hidden = false;
    $("#login-error").textContent = message || "";
    $("#token").value = "";
    $("#token").focus();
  }

  async function login(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      await api("GET", "/plugins");
    } catch (e) {
      if (e instanceof Unauthorized) { showLogin("That token was refused: check it and try again."); return; }
      showLogin("The admin API did not answer: " + e.message);
      return;
    }
    $("#login-view").hidden = true;
    $("#app").hidden = false;
    $("#logout").hidden = false;
    if (!location.hash || location.hash === "#") location.hash = "#plugins";
    else route();
  }

  // failed handles an error of a page's requests: back to the login form
  // on 401, otherwise a message.
  function failed(e) {
    if (e instanceof Unauthorized) { showLogin("The token was refused (it may have changed): log in again."); return; }
    say("Error: " + e.message, true);
  }

  function say(text, isError) {
    const live = $("#live");
    live.textContent = text;
    live.classList.toggle("error", !!isError);
  }

  // ---- confirmation dialog -------------------------------------------

  // confirmAction shows the dialog and resolves true when the operator
  // confirms. extra, when given, is a field the operator must fill: the
  // confirm button is enabled once check(value) holds.
  function confirmAction(title, text, verb, extra) {
    const d = $("#confirm-dialog");
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    const yes = $("#confirm-yes"), no = $("#confirm-no"), box = $("#confirm-extra");
    yes.textContent = verb;
    box.replaceChildren();
    let input = null;
    if (extra) {
      input = el("input", { id: "confirm-input", type: "text", autocomplete: "off", spellcheck: "false" });
      box.append(el("label", { for: "confirm-input" }, extra.label), input);
      yes.disabled = true;
      input.addEventListener("input", () => { yes.disabled = !extra.check(input.value); });
    } else {
      yes.disabled = false;
    }
    return new Promise((resolve) => {
      const done = (ok) => {
        yes.onclick = no.onclick = d.oncancel = null;
        if (d.open) d.close();
        resolve(ok);
      };
      yes.onclick = () => done(true);
      no.onclick = () => done(false);
      d.oncancel = (ev) => { ev.preventDefault(); done(false); };
      d.showModal();
      (input || no).focus();
    });
  }

  // ---- views ---------------------------------------------------------

  const views = {};
  let current = null;      // name of the view shown
  let pollTimer = null;
  let state = { plugins: [], nav: [] };

  function stopPolling() {
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
  }

  function schedule(fn) {
    stopPolling();
    pollTimer = setTimeout(async () => {
      if (document.hidden || $("#confirm-dialog").open) { schedule(fn); return; }
      try { await fn(); } catch (e) { failed(e); return; }
      if (pollTimer) schedule(fn);
    }, POLL_MS);
  }

  // render replaces the view's content, keeping the keyboard focus on the
  // element with the same data-focus key if there is one.
  function render(...nodes) {
    const view = $("#view");
    const active = document.activeElement;
    const key = active && view.contains(active) ? active.getAttribute("data-focus") : null;
    view.replaceChildren(...nodes);
    if (key) {
      const again = view.querySelector('[data-focus="' + CSS.escape(key) + '"]');
      if (again) again.focus();
    }
  }

  function markCurrent(name) {
    for (const a of document.querySelectorAll(".side a")) {
      if (a.getAttribute("href") === "#" + name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  async function route() {
    if ($("#app").hidden) return;
    stopPolling();
    const hash = decodeURIComponent(location.hash.slice(1)) || "plugins";
    const [name, ...rest] = hash.split("/");
    const view = views[name] || views.plugins;
    current = views[name] ? name : "plugins";
    markCurrent(hash);
    say("");
    try {
      if (view !== views.plugins) await refreshNav(); // the plugins page refreshes it itself
      await view(rest.join("/"));
    } catch (e) { failed(e); }
  }

  // refreshNav lists the plugins' pages (GET /nav) and whether any plugin
  // is removed (the removed-plugins page).
  async function refreshNav() {
    const nav = await optional("/nav");
    state.nav = (nav && nav.nav) || [];
    const list = $("#plugin-nav");
    list.replaceChildren(...state.nav.map((n) => {
      const href = "#page/" + n.plugin + "/" + n.path;
      const a = el("a", { href, "data-plugin": n.plugin },
        n.icon_href ? el("img", { src: n.icon_href, alt: "" }) : null, n.label);
      if (location.hash === href) a.setAttribute("aria-current", "page");
      return el("li", {}, a);
    }));
    if (state.nav.length === 0) list.append(el("li", { class: "muted" }, "None"));
  }

  function heading(text, ...after) {
    return el("div", { class: "row" }, el("h2", {}, text), ...after);
  }

  function kv(pairs) {
    const dl = el("dl", { class: "kv" });
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0)) continue;
      dl.append(el("dt", {}, k), el("dd", {}, v instanceof Node ? v : String(v)));
    }
    return dl;
  }

  // generic renders any JSON value as nested lists: for fields the API adds
  // that the console has no special view for (metrics, workers, jobs).
  function generic(v) {
    if (v === null || v === undefined) return el("span", { class: "muted" }, "none");
    if (Array.isArray(v)) {
      if (v.length === 0) return el("span", { class: "muted" }, "none");
      return el("ul", {}, v.map((x) => el("li", {}, generic(x))));
    }
    if (typeof v === "object") {
      const dl = el("dl", { class: "kv" });
      for (const [k, x] of Object.entries(v)) dl.append(el("dt", {}, k), el("dd", {}, generic(x)));
      return dl;
    }
    return el("span", {}, String(v));
  }

  function ms(ns) { return ns ? (ns / 1e6).toFixed(1) + " ms" : ""; }

  // quantile estimates the q-th quantile, in seconds, of a histogram of
  // per-bucket counts (GET /metrics): the upper bound of the bucket it
  // falls in; "" when the histogram is empty.
  function quantile(h, q) {
    if (!h || !h.count) return "";
    const want = q * h.count;
    let seen = 0;
    for (let i = 0; i < h.counts.length; i++) {
      seen += h.counts[i];
      if (seen >= want) return i < h.bounds.length ? "≤ " + (h.bounds[i] * 1000) + " ms" : "> " + (h.bounds[h.bounds.length - 1] * 1000) + " ms";
    }
    return "";
  }

  // metricsView shows a plugin's metrics: totals, then a table per route.
  function metricsView(m) {
    const r = m.responses || {};
    const totals = kv([
      ["Requests", m.requests], ["2xx", r["2xx"]], ["4xx", r["4xx"]], ["5xx", r["5xx"]],
      ["Latency p50", quantile(m.latency, 0.5)], ["Latency p95", quantile(m.latency, 0.95)],
      ["In flight", m.in_flight], ["Panics", m.panics], ["Breaker trips", m.breaker_trips],
      ["Events published", m.events && m.events.published], ["Events dropped", m.events && m.events.dropped],
      ["Extension calls", m.extensions && m.extensions.calls],
    ]);
    const routes = (m.routes || []).filter((x) => x.requests);
    if (!routes.length) return totals;
    const head = el("tr", {}, ["Route", "Requests", "2xx", "4xx", "5xx", "p50", "p95"].map((t) => el("th", { scope: "col" }, t)));
    const rows = routes.map((x) => el("tr", {},
      el("td", {}, el("code", {}, x.pattern)), el("td", {}, String(x.requests)),
      el("td", {}, String(x.responses["2xx"])), el("td", {}, String(x.responses["4xx"])), el("td", {}, String(x.responses["5xx"])),
      el("td", {}, quantile(x.latency, 0.5)), el("td", {}, quantile(x.latency, 0.95))));
    return el("div", {}, totals, el("table", { class: "metrics" }, el("caption", {}, "Per route"), el("thead", {}, head), el("tbody", {}, rows)));
  }

  function stateBadge(s) { return el("span", { class: "badge state-" + s, "data-state": s }, s); }

  // metricsOf finds a plugin's metrics in GET /metrics ({"plugins": [...]}).
  function metricsOf(st, metrics) {
    return (metrics && metrics.plugins || []).find((x) => x.plugin === st.id) || null;
  }

  // Fields of a status shown by the card itself; the others are shown
  // generically.
  const shownFields = new Set(["id", "name", "version", "state", "reason", "since", "warnings", "missing_settings",
    "permissions", "routes", "timings", "reads", "panics", "overruns", "events_dropped", "in_flight", "rejected",
    "sandbox", "metrics", "tables", "setting_keys", "ledger_rows"]);

  function pluginCard(st, health, metrics) {
    const running = st.state === "running" || st.state === "starting";
    const canToggle = st.state !== "removed";
    const verb = running ? "Disable" : "Enable";
    const button = canToggle ? el("button", {
      type: "button", class: running ? "danger" : "primary", id: "toggle-" + st.id, "data-focus": "toggle-" + st.id,
      "aria-label": verb + " " + (st.name || st.id),
      onclick: () => toggle(st, running),
    }, verb) : null;
    const h = health && health.plugins ? health.plugins.find((p) => p.id === st.id) : null;
    let healthText = null;
    if (h) {
      if (!h.checked) healthText = st.state === "running" ? "no check (healthy)" : (h.error || st.state);
      else healthText = (h.error ? "failing: " + h.error : "healthy") + (h.latency_ns ? " (" + ms(h.latency_ns) + ")" : "");
    }
    const m = metricsOf(st, metrics);
    const counters = [
      ["In flight", st.in_flight], ["Rejected", st.rejected], ["Panics", st.panics],
      ["Overruns", st.overruns], ["Events dropped", st.events_dropped],
    ].filter(([, v]) => v);
    const extra = Object.entries(st).filter(([k]) => !shownFields.has(k));
    return el("article", { class: "card", id: "plugin-" + st.id, "data-plugin": st.id, "aria-labelledby": "plugin-title-" + st.id },
      el("h3", { id: "plugin-title-" + st.id }, st.name || st.id, el("code", {}, st.id), stateBadge(st.state)),
      kv([
        ["Version", st.version],
        ["Reason", st.reason],
        ["Since", st.since ? new Date(st.since).toLocaleString() : ""],
        ["Health", healthText],
        ["Sandbox", st.sandbox],
        ["Missing settings", (st.missing_settings || []).join(", ")],
        ["Permissions", (st.permissions || []).map((p) => p.name + (p.description ? " (" + p.description + ")" : "")).join("; ")],
        ...counters,
      ]),
      st.warnings && st.warnings.length ? el("details", {}, el("summary", {}, st.warnings.length + " warning(s)"),
        el("ul", { class: "warnings" }, st.warnings.map((w) => el("li", {}, w)))) : null,
      st.routes && st.routes.length ? el("details", {}, el("summary", {}, st.routes.length + " route(s)"),
        el("ul", {}, st.routes.map((r) => el("li", {}, el("code", {}, r.method + " " + r.pattern))))) : null,
      m ? el("details", { open: true, "data-metrics": st.id }, el("summary", {}, "Metrics"), metricsView(m)) : null,
      extra.map(([k, v]) => el("details", {}, el("summary", {}, k), generic(v))),
      el("div", { class: "row" }, button),
    );
  }

  async function toggle(st, running) {
    const name = st.name || st.id;
    const ok = await confirmAction(
      (running ? "Disable " : "Enable ") + name + "?",
      running ? "Its routes answer 503 and its pages leave the console until it is enabled again; plugins that depend on it stop too. The choice is kept across restarts."
        : "It runs its phases now and serves its routes. The choice is kept across restarts.",
      running ? "Disable" : "Enable");
    if (!ok) { const b = $("#toggle-" + CSS.escape(st.id)); if (b) b.focus(); return; }
    try {
      const now = await api("POST", "/plugins/" + encodeURIComponent(st.id) + (running ? "/disable" : "/enable"));
      say(name + " is " + now.state + (now.reason ? " (" + now.reason + ")" : "") + ".");
    } catch (e) { failed(e); }
    try { if (current === "plugins") await views.plugins(); else await refreshNav(); } catch (e) { failed(e); }
    const b = $("#toggle-" + CSS.escape(st.id));
    if (b) b.focus();
  }

  views.plugins = async function () {
    const load = async () => {
      const [list, health, metrics] = await Promise.all([api("GET", "/plugins"), optional("/health"), optional("/metrics")]);
      state.plugins = list.plugins || [];
      $("#removed-link").hidden = !state.plugins.some((p) => p.state === "removed");
      const live = state.plugins.filter((p) => p.state !== "removed");
      render(
        heading("Plugins", el("span", { class: "muted" }, health ? (health.ready ? "host ready" : "host not ready") +
          (health.database && health.database.error ? " — database: " + health.database.error : "") : "")),
        el("div", { class: "cards" }, live.map((st) => pluginCard(st, health, metrics))),
      );
      await refreshNav();
    };
    await load();
    schedule(load);
  };

  // settingForm is one setting with an input of its type.
  function settingForm(s) {
    const id = "setting-" + s.key.replace(/[^A-Za-z0-9_-]/g, "_");
    let input;
    const common = { id, name: s.key, "data-key": s.key, "aria-describedby": s.description ? id + "-desc" : undefined };
    if (s.type === "boolean") {
      input = el("input", { ...common, type: "checkbox" });
      input.checked = s.value === true || (s.value === null && s.default === true);
    } else if (s.type === "number") {
      input = el("input", { ...common, type: "number", step: "any", required: true });
      input.value = s.value !== null && s.value !== undefined ? s.value : (s.default !== undefined ? s.default : "");
    } else if (s.encrypted) {
      input = el("input", { ...common, type: "password", autocomplete: "new-password",
        placeholder: s.set ? "set (hidden): type to replace" : "not set" });
    } else {
      input = el("input", { ...common, type: "text" });
      input.value = s.value !== null && s.value !== undefined ? s.value : (s.default !== undefined ? s.default : "");
    }
    const status = el("span", { class: "muted", id: id + "-status" },
      s.set ? "" : "default", s.required ? " required" : "", s.encrypted ? " encrypted" : "");
    const form = el("form", { class: "setting", "data-key": s.key },
      el("label", { for: id }, s.key), el("div", { class: "row" }, input, status),
      el("button", { type: "submit", "aria-label": "Save " + s.key }, "Save"),
      s.description ? el("p", { class: "desc", id: id + "-desc" }, s.description) : null);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      let value;
      if (s.type === "boolean") value = input.checked;
      else if (s.type === "number") {
        if (input.value.trim() === "" || !isFinite(Number(input.value))) { say(s.key + ": enter a number", true); input.focus(); return; }
        value = Number(input.value);
      } else value = input.value;
      try {
        const saved = await api("PUT", "/settings/" + encodeURIComponent(s.key), { value });
        if (s.encrypted) input.value = "";
        say("Saved " + s.key + (s.encrypted ? "" : " = " + JSON.stringify(saved.value)) + ".");
        status.textContent = "saved";
      } catch (e) { failed(e); }
    });
    return form;
  }

  views.settings = async function () {
    const data = await api("GET", "/settings");
    const groups = (data.groups || []).filter((g) => g.settings.length > 0);
    const sections = groups.map((g) => el("fieldset", { "data-group": g.id },
      el("legend", {}, g.name || g.id),
      g.description ? el("p", { class: "muted" }, g.description) : null,
      g.settings.map(settingForm)));
    if ((data.ungrouped || []).length) {
      sections.push(el("fieldset", {}, el("legend", {}, "Other settings"), data.ungrouped.map(settingForm)));
    }
    render(heading("Settings"), ...(sections.length ? sections : [el("p", { class: "muted" }, "No settings are defined.")]));
  };

  views.routes = async function () {
    const data = await api("GET", "/routes");
    const rows = (data.routes || []).map((r) => el("tr", {}, el("td", {}, r.plugin), el("td", {}, r.method), el("td", {}, el("code", {}, r.pattern))));
    render(heading("Routes"), rows.length ? el("table", {},
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Plugin"), el("th", { scope: "col" }, "Method"), el("th", { scope: "col" }, "Pattern"))),
      el("tbody", {}, rows)) : el("p", { class: "muted" }, "No plugin serves routes."));
  };

  views.events = async function () {
    const load = async () => {
      const data = await api("GET", "/events");
      const rows = (data.events || []).slice().reverse().map((e) => el("tr", { "data-seq": e.seq },
        el("td", {}, new Date(e.time).toLocaleTimeString()), el("td", {}, e.type.replace(/_/g, " ")),
        el("td", {}, e.plugin || ""), el("td", {}, e.key ? e.key : (e.reason || ""))));
      render(heading("Recent lifecycle events", el("span", { class: "muted" }, "newest first")),
        rows.length ? el("table", {},
          el("thead", {}, el("tr", {}, ["Time", "Event", "Plugin", "Reason or setting"].map((t) => el("th", { scope: "col" }, t)))),
          el("tbody", {}, rows)) : el("p", { class: "muted" }, "No events yet."));
    };
    await load();
    schedule(load);
  };

  function list(items) { return items && items.length ? items.join(", ") : ""; }

  views.plan = async function () {
    render(heading("Plan"), el("p", { class: "muted" }, "Reading the database…"));
    const p = await api("GET", "/plan");
    const plugins = (p.plugins || []).map((pp) => el("article", { class: "card", "data-plan": pp.id },
      el("h3", {}, pp.id, pp.state ? stateBadge(pp.state) : null, el("span", { class: "muted" }, pp.start ? "would start" : "would not start")),
      kv([
        ["Version", pp.version + (pp.recorded_version && pp.recorded_version !== pp.version ? " (recorded " + pp.recorded_version + ")" : "")],
        ["Reason", pp.reason],
        ["Migrations", list(pp.migrations)],
        ["Tables to create", list(pp.tables_to_create)],
        ["Tables to recreate", list(pp.tables_to_recreate)],
        ["Once-hooks", list(pp.once_hooks)],
      ]),
      pp.schema_changes && pp.schema_changes.length ? el("details", {}, el("summary", {}, "Schema changes"), generic(pp.schema_changes)) : null,
      pp.settings_to_add && pp.settings_to_add.length ? el("details", {}, el("summary", {}, "Settings to add"), generic(pp.settings_to_add)) : null));
    render(
      heading("Plan", el("button", { type: "button", "data-focus": "plan-refresh", onclick: () => views.plan() }, "Plan again")),
      el("p", {}, p.work ? "A start would change the database." : "A start would change nothing.", " Dialect: ", p.dialect || "?"),
      p.error ? el("p", { class: "error" }, p.error) : null,
      el("h3", {}, "Core"), generic(p.core),
      el("div", { class: "cards" }, plugins));
  };

  views.removed = async function () {
    const data = await api("GET", "/plugins");
    const removed = (data.plugins || []).filter((p) => p.state === "removed");
    const cards = removed.map((st) => el("article", { class: "card", "data-removed": st.id },
      el("h3", {}, st.name || st.id, el("code", {}, st.id), stateBadge(st.state)),
      kv([["Version", st.version], ["Reason", st.reason]]),
      ["tables", "setting_keys", "ledger_rows"].filter((k) => st[k] !== undefined).map((k) => el("details", { open: true }, el("summary", {}, k), generic(st[k]))),
      el("div", { class: "row" },
        el("button", { type: "button", "data-focus": "export-" + st.id, onclick: () => exportPlugin(st) }, "Export data"),
        el("button", { type: "button", class: "danger", "data-focus": "purge-" + st.id, onclick: () => purge(st) }, "Purge…"))));
    render(heading("Removed plugins"), cards.length ? el("div", { class: "cards" }, cards) : el("p", { class: "muted" }, "No removed plugins."));
  };

  async function exportPlugin(st) {
    try {
      const res = await fetch(API + "/plugins/" + encodeURIComponent(st.id) + "/export",
        { headers: { "Authorization": "Bearer " + sessionStorage.getItem(TOKEN_KEY) }, cache: "no-store" });
      if (res.status === 401) throw new Unauthorized("refused");
      if (!res.ok) throw new APIError(res.status, "export: " + res.status + " " + res.statusText);
      const url = URL.createObjectURL(await res.blob());
      const a = el("a", { href: url, download: st.id + "-export" });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) { failed(e); }
  }

  async function purge(st) {
    const ok = await confirmAction("Purge " + st.id + "?",
      "This drops its tables and deletes its settings and ledger rows, for good. Export its data first if you may need it.",
      "Purge", { label: "Type the plugin id, " + st.id + ", to confirm", check: (v) => v === st.id });
    if (!ok) return;
    try {
      await api("POST", "/plugins/" + encodeURIComponent(st.id) + "/purge", { confirm: st.id });
      say("Purged " + st.id + ".");
    } catch (e) { failed(e); }
    await views.removed();
  }

  views.page = async function (rest) {
    const [plugin, ...p] = rest.split("/");
    const path = p.join("/");
    const n = state.nav.find((x) => x.plugin === plugin && x.path === path);
    if (!n) {
      render(heading("Page not available"), el("p", {}, "The plugin ", el("code", {}, plugin),
        " does not offer this page now: it may be disabled. ", el("a", { href: "#plugins" }, "Back to the plugins")));
      return;
    }
    render(heading(n.label, el("span", { class: "muted" }, "from " + (n.plugin_name || n.plugin))),
      el("iframe", { class: "plugin-page", src: n.href, title: n.label + " (" + n.plugin + ")" }));
    // The page leaves when its plugin stops.
    const check = async () => {
      await refreshNav();
      if (!state.nav.some((x) => x.plugin === plugin && x.path === path)) await views.page(rest);
    };
    schedule(check);
  };

  // ---- start -----------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("#login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("#token").value.trim();
      if (t) login(t);
    });
    $("#logout").addEventListener("click", () => showLogin("Logged out."));
    window.addEventListener("hashchange", () => { route().then(() => $("#view").focus({ preventScroll: true })); });
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) login(token); else showLogin("");
  });
})();
