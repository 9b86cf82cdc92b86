// The notes plugin's console page: it lists and adds notes through the
// plugin's own API, /api/plugin/notes/notes (relative: ../notes).
"use strict";
(function () {
  const list = document.getElementById("notes");
  const status = document.getElementById("notes-status");

  async function load() {
    const res = await fetch("../notes", { cache: "no-store" });
    if (!res.ok) { status.textContent = "The notes API answered " + res.status + "."; return; }
    const notes = await res.json();
    list.replaceChildren(...notes.map((n) => {
      const li = document.createElement("li");
      const t = document.createElement("strong");
      t.textContent = n.title;
      li.append(t, document.createTextNode(n.body || ""));
      return li;
    }));
    status.textContent = notes.length + " note(s).";
  }

  document.getElementById("new-note").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const res = await fetch("../notes", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ title: form.title.value, body: form.body.value }),
    });
    if (!res.ok) { status.textContent = "Not added: " + ((await res.json()).error || res.status); return; }
    form.reset();
    await load();
  });
  load();
})();
