// tokencoach playground: vanilla JS, no dependencies.
// Message HTML is rendered (and escaped) by the server from the reply model; everything
// this script builds itself from data uses textContent, never innerHTML.
"use strict";

(() => {
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const state = {
    dir: null,        // /playground/api/directory
    me: null,         // person object
    conv: null,       // "dm:<id>" | "team:<id>"
    known: new Map(), // message id -> etag shown on screen
    seen: {},         // person id -> {conversation: newest id seen}
    latest: {},
    inFlight: false,
    again: false,
    world: null,      // which store the server showed last: "real-N" or "sim-N"
    stick: true,      // keep the newest message in view (until the reader scrolls up)
  };

  // --- talking to the server ---------------------------------------------------------

  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    const res = await fetch(`/playground/api/${path}`, init);
    let data = {};
    try { data = await res.json(); } catch (_) { /* not JSON: keep the status */ }
    if (!res.ok) throw new Error(data.error || `The server answered ${res.status}`);
    if (data.world && state.world && data.world !== state.world) changedWorld(data.world);
    if (data.world) state.world = data.world;
    return data;
  }

  function where() {
    return { as: state.me.id, conversation: state.conv };
  }

  function toast(text) {
    const el = $("toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, 5000);
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("aria") || k === "role") node.setAttribute(k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()), v);
      else node[k] = v;
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // --- the sidebar -------------------------------------------------------------------

  function roleBadges(roles) {
    return roles.map((r) => el("span", { className: `badge role-${r}`, text: r }));
  }

  function renderPeople() {
    const box = $("people");
    box.replaceChildren();
    for (const team of state.dir.teams) {
      box.append(el("div", { className: "team-name", text: team.name }));
      for (const p of team.people) {
        const btn = el("button", {
          type: "button", className: "person", title: p.email,
          dataset: { personId: String(p.id) },
          ariaPressed: String(state.me !== null && state.me.id === p.id),
        }, el("span", { className: "name", text: p.name }), ...roleBadges(p.roles));
        btn.addEventListener("click", () => choose(p));
        box.append(btn);
      }
    }
  }

  function channels() {
    return state.dir.teams.filter((t) => t.conversation);
  }

  function convButton(conv, label, title) {
    const btn = el("button", {
      type: "button", dataset: { conv }, title,
      ariaCurrent: String(conv === state.conv), disabled: state.me === null,
    }, el("span", { text: label }));
    btn.addEventListener("click", () => openConversation(conv));
    return el("li", {}, btn);
  }

  function renderConversations() {
    const dm = state.me ? `dm:${state.me.id}` : "dm:";
    $("dm-list").replaceChildren(convButton(dm, "● tokencoach", "Your DM with the bot"));
    $("channel-list").replaceChildren(...channels().map(
      (t) => convButton(t.conversation, `# ${t.key}`, `${t.name} channel`)));
    renderUnread();
  }

  function renderUnread() {
    if (!state.me) return;
    const seen = state.seen[state.me.id] || {};
    for (const btn of document.querySelectorAll(".conv-list button")) {
      const conv = btn.dataset.conv;
      const unread = conv !== state.conv && (state.latest[conv] || 0) > (seen[conv] || 0);
      const dot = btn.querySelector(".unread");
      if (unread && !dot) btn.append(el("span", { className: "unread", ariaLabel: "new messages" }));
      if (!unread && dot) dot.remove();
    }
  }

  function renderClock(clock) {
    $("clock").textContent = `${clock.label} (${clock.tz})`;
    $("tz").textContent = `(${clock.tz})`;
    $("clock-kind").textContent = clock.simulated ? "Simulated clock" : "Bot clock";
    $("sim-clock").textContent = `${clock.label} (${clock.tz})`;
    $("sim-banner").hidden = !clock.simulated;
    document.body.classList.toggle("simulated", Boolean(clock.simulated));
  }

  // The server switched stores (a simulation started or was thrown away): what is on
  // screen belongs to the other one.
  function changedWorld(world) {
    state.world = world;
    state.known = new Map();
    state.seen = {};
    state.stick = true;
    $("messages").replaceChildren();
    loadDirectory().catch(() => {});
    poll();
  }

  function renderWelcome() {
    const box = $("welcome");
    if (state.me) { box.replaceChildren(); return; }
    const s = state.dir.suggestion;
    const parts = [el("p", { text: "Pick who you are in the sidebar: every person in the demo org is here, with their role." })];
    if (s) {
      parts.push(el("p", {},
        "Try the approval round trip: as ", el("strong", { text: s.employee.name }),
        " type ", el("code", { text: "/tokens sandbox" }), " and send the form, then switch to ",
        el("strong", { text: s.manager.name }), " (their manager), click Approve, and switch back."));
    }
    parts.push(el("p", {}, "Use ", el("strong", { text: "Run due jobs now" }),
      " to run what is due. Fill in “As if it were” (e.g. next Monday 09:30) to see digests, tips and alerts without waiting: that runs on a copy of the store, and ",
      el("strong", { text: "Return to now" }), " throws the copy away."));
    box.replaceChildren(...parts);
  }

  // --- who and where -----------------------------------------------------------------

  function choose(person) {
    closeMenu();
    state.me = person;
    localStorage.setItem("tc-playground-me", String(person.id));
    $("me-name").textContent = person.name;
    $("me-roles").replaceChildren(...roleBadges(person.roles));
    for (const b of document.querySelectorAll(".person")) {
      b.setAttribute("aria-pressed", String(b.dataset.personId === String(person.id)));
    }
    $("composer-input").disabled = false;
    $("send").disabled = false;
    renderWelcome();
    openConversation(`dm:${person.id}`);
  }

  function openConversation(conv) {
    closeMenu();
    state.conv = conv;
    state.stick = true;
    state.known = new Map();
    $("messages").replaceChildren();
    const team = channels().find((t) => t.conversation === conv);
    $("conv-title").textContent = team ? `# ${team.key}` : "tokencoach";
    $("conv-sub").textContent = team
      ? `${team.name} channel · weekly digests land here · /tokens works here too (only you see the answer)`
      : `${state.me.name}'s direct messages with the bot · try /tokens, /tokens sandbox, /tokens help`;
    $("composer-input").placeholder = team ? `Message #${team.key}` : "Message tokencoach — try /tokens";
    renderConversations();
    poll();
    $("composer-input").focus();
  }

  // --- messages ----------------------------------------------------------------------

  function parse(html) {
    const t = document.createElement("template");
    t.innerHTML = html;
    return t.content.firstElementChild;
  }

  function place(box, node, id) {
    const existing = box.querySelector(`article[data-id="${id}"]`);
    if (existing) { existing.replaceWith(node); return false; }
    const later = [...box.children].find((a) => Number(a.dataset.id) > id);
    box.insertBefore(node, later || null);
    return true;
  }

  function atBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }

  function toNewest() {
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
  }

  function apply(data) {
    const box = $("messages");
    const ids = new Set(data.ids);
    for (const a of [...box.children]) {
      if (!ids.has(Number(a.dataset.id))) { a.remove(); state.known.delete(a.dataset.id); }
    }
    let added = false;
    for (const m of data.messages) {
      added = place(box, parse(m.html), m.id) || added;
      state.known.set(String(m.id), m.etag);
    }
    // Images (digest charts) load after this and push the newest message down again:
    // the "load" listener below keeps it in view while the reader has not scrolled up.
    if (added && state.stick) toNewest();
    state.latest = data.latest || {};
    const seen = state.seen[state.me.id] || (state.seen[state.me.id] = { ...state.latest });
    seen[state.conv] = Math.max(seen[state.conv] || 0, state.latest[state.conv] || 0);
    renderUnread();
  }

  async function poll() {
    if (!state.me) return;
    if (state.inFlight) { state.again = true; return; }
    state.inFlight = true;
    const asked = { ...where(), known: Object.fromEntries(state.known) };
    try {
      const data = await api("messages", asked);
      // Ignore an answer for a conversation or person we have since left.
      if (asked.as === state.me.id && asked.conversation === state.conv) apply(data);
    } catch (err) {
      toast(err.message);
    } finally {
      state.inFlight = false;
      if (state.again) { state.again = false; poll(); }
    }
  }

  // --- forms -------------------------------------------------------------------------

  function openForm(form) {
    const dialog = $("dialog");
    dialog.innerHTML = form.html; // server-rendered from the Form model, escaped there
    dialog.dataset.messageId = form.message_id == null ? "" : String(form.message_id);
    if (!dialog.open) dialog.showModal();
    const first = dialog.querySelector("input, textarea, select");
    if (first) first.focus();
  }

  function showErrors(form, errors) {
    for (const e of form.querySelectorAll(".field-error")) e.textContent = "";
    for (const f of form.querySelectorAll(".field")) f.classList.remove("has-error");
    for (const [name, message] of Object.entries(errors)) {
      const slot = [...form.querySelectorAll("[data-error-for]")].find((s) => s.dataset.errorFor === name)
        || form.querySelector('[data-error-for=""]');
      slot.textContent = message;
      const field = slot.closest(".field");
      if (field) field.classList.add("has-error");
    }
  }

  async function submitForm(form) {
    const dialog = $("dialog");
    const values = {};
    for (const input of form.querySelectorAll("[name]")) values[input.name] = input.value;
    const mid = dialog.dataset.messageId;
    const submit = form.querySelector('button[type="submit"]');
    submit.setAttribute("aria-busy", "true");
    try {
      const result = await api("action", {
        ...where(), action: form.dataset.action, value: form.dataset.value || "",
        message_id: mid ? Number(mid) : null, form: values,
      });
      if (result.errors) { showErrors(form, result.errors); return; }
      dialog.close();
      if (result.form) openForm(result.form);
      poll();
    } catch (err) {
      showErrors(form, { "": err.message });
    } finally {
      submit.removeAttribute("aria-busy");
    }
  }

  function confirmFirst(text) {
    if (!text) return Promise.resolve(true);
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    });
  }

  // --- clicks ------------------------------------------------------------------------

  async function click(target) {
    const article = target.closest("article[data-id]");
    if (!article || !state.me || target.getAttribute("aria-busy")) return; // one click at a time
    const isLink = target.tagName === "A";
    if (!isLink && !(await confirmFirst(target.dataset.confirm))) return;
    if (!target.dataset.action) return;
    target.setAttribute("aria-busy", "true");
    try {
      const result = await api("action", {
        ...where(), action: target.dataset.action, value: target.dataset.value || "",
        message_id: Number(article.dataset.id),
      });
      if (result.form) openForm(result.form);
      poll();
    } catch (err) {
      toast(err.message);
    } finally {
      target.removeAttribute("aria-busy");
    }
  }

  function openMenu() {
    $("sidebar").classList.add("open");
    $("scrim").hidden = false;
    $("menu-toggle").setAttribute("aria-expanded", "true");
  }

  function closeMenu() {
    $("sidebar").classList.remove("open");
    $("scrim").hidden = true;
    $("menu-toggle").setAttribute("aria-expanded", "false");
  }

  function wire() {
    const box = $("messages");
    box.addEventListener("scroll", () => { state.stick = atBottom(box); });
    // "load" does not bubble; in the capture phase one listener sees every image.
    box.addEventListener("load", () => { if (state.stick) toNewest(); }, true);
    $("menu-toggle").addEventListener("click", () => {
      if ($("sidebar").classList.contains("open")) closeMenu(); else openMenu();
    });
    $("scrim").addEventListener("click", closeMenu);
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeMenu(); });

    $("messages").addEventListener("click", (ev) => {
      const target = ev.target.closest("button[data-action], a.btn");
      if (!target) return;
      // A link button opens its URL itself (a real link: no popup blocker); we only
      // record the tracked action. A confirm on a link is not supported by the model.
      if (target.tagName !== "A") ev.preventDefault();
      click(target);
    });

    $("composer").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const input = $("composer-input");
      const text = input.value.trim();
      if (!text || !state.me) return;
      input.value = "";
      state.stick = true; // what you said, and the answer, are the newest messages
      try {
        const result = await api("send", { ...where(), text });
        if (result.form) openForm(result.form);
      } catch (err) {
        toast(err.message);
        input.value = text;
      }
      poll();
    });

    const dialog = $("dialog");
    dialog.addEventListener("submit", (ev) => {
      ev.preventDefault();
      submitForm(ev.target);
    });
    dialog.addEventListener("click", (ev) => {
      if (ev.target.closest("[data-close]")) dialog.close();
    });
    $("confirm").addEventListener("click", (ev) => {
      const button = ev.target.closest("button[value]");
      if (!button) return;
      ev.preventDefault();
      $("confirm").close(button.value);
    });

    $("run-due").addEventListener("click", runDue);
    $("back-to-now").addEventListener("click", backToNow);
  }

  async function backToNow() {
    const button = $("back-to-now");
    button.disabled = true;
    try {
      const result = await api("back-to-now", {});
      renderClock(result.clock);
      $("as-if").value = "";
      $("ran").textContent = "Back to now: the simulated copy was thrown away.";
    } catch (err) {
      toast(err.message);
    } finally {
      button.disabled = false;
    }
  }

  async function runDue() {
    const button = $("run-due");
    const at = $("as-if").value || null;
    const box = $("ran");
    button.disabled = true;
    box.textContent = "Running…";
    try {
      const result = await api("run-due", { at });
      showRan(result);
      renderClock(result.clock);
      loadDirectory().catch(() => {});
      state.stick = true;
      poll();
    } catch (err) {
      box.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }

  function showRan(result) {
    const box = $("ran");
    const when = result.as_if ? `Simulated, ${result.clock.label}` : `At ${result.clock.label}`;
    const items = result.ran.map((o) => el("li", {
      className: o.ok ? "ok" : "failed", title: o.detail,
      text: `${o.ok ? "✓" : "✗"} ${o.job} · ${o.period}${o.late ? " (caught up after downtime)" : ""}`,
    }));
    box.replaceChildren(
      el("div", { text: `${when}:` }),
      items.length ? el("ul", { className: "ran-list" }, ...items)
        : el("div", { text: "nothing was due." }),
      el("div", { text: `${result.delivered} message(s) delivered${result.failed ? `, ${result.failed} failed` : ""}.` }),
    );
  }

  // --- start -------------------------------------------------------------------------

  async function loadDirectory() {
    state.dir = await api("directory");
    state.world = state.world || state.dir.world;
    $("org-name").textContent = state.dir.org;
    renderClock(state.dir.clock);
  }

  async function start() {
    wire();
    try {
      await loadDirectory();
    } catch (err) {
      $("conv-sub").textContent = `Could not load the workspace: ${err.message}`;
      return;
    }
    renderPeople();
    renderConversations();
    renderWelcome();
    const saved = Number(localStorage.getItem("tc-playground-me"));
    const person = state.dir.teams.flatMap((t) => t.people).find((p) => p.id === saved);
    if (person) choose(person);
    setInterval(poll, POLL_MS);
    setInterval(() => loadDirectory().catch(() => {}), 30000);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
