// Bazaar ops console: refreshes the console in place. Without this file the
// page is a plain render; with it, the live part (#ops-live) is fetched
// again from its data-src every few seconds and swapped in, keeping open
// saga timelines, table scroll positions and focus. A button pauses it.
"use strict";
(function () {
  const PERIOD = 2500;
  let live = document.getElementById("ops-live");
  if (!live || !live.dataset.src || !window.fetch || !window.DOMParser) return;
  const src = live.dataset.src;

  const controls = document.createElement("p");
  controls.className = "ops-controls";
  const button = document.createElement("button");
  button.type = "button";
  button.setAttribute("aria-pressed", "false");
  button.textContent = "Pause live updates";
  const state = document.createElement("span");
  state.className = "ops-live-state";
  state.setAttribute("role", "status");
  controls.append(button, " ", state);
  live.before(controls);

  let paused = false;
  let stopped = false;
  let timer = 0;
  let failures = 0;

  function say(text) {
    if (state.textContent !== text) state.textContent = text;
  }

  function schedule(delay) {
    clearTimeout(timer);
    if (!paused && !stopped) timer = setTimeout(refresh, delay);
  }

  // A selection inside the console would vanish with the swap.
  function selecting() {
    const sel = window.getSelection && window.getSelection();
    return !!sel && !sel.isCollapsed && sel.rangeCount > 0 &&
      live.contains(sel.getRangeAt(0).commonAncestorContainer);
  }

  // What to carry over from the old content to the new.
  function remember() {
    const open = new Set();
    live.querySelectorAll("details[open][data-key]").forEach((d) => open.add(d.dataset.key));
    const scroll = new Map();
    live.querySelectorAll(".ops-scroll[aria-labelledby]").forEach((s) => {
      scroll.set(s.getAttribute("aria-labelledby"), s.scrollLeft);
    });
    let focus = null;
    const active = document.activeElement;
    if (active && live.contains(active)) {
      const details = active.closest("details[data-key]");
      if (details && active.tagName === "SUMMARY") {
        focus = 'details[data-key="' + CSS.escape(details.dataset.key) + '"] > summary';
      } else if (active.matches(".ops-scroll[aria-labelledby]")) {
        focus = '.ops-scroll[aria-labelledby="' + CSS.escape(active.getAttribute("aria-labelledby")) + '"]';
      }
    }
    return { open, scroll, focus };
  }

  function restore(next, kept) {
    next.querySelectorAll("details[data-key]").forEach((d) => {
      if (kept.open.has(d.dataset.key)) d.open = true;
    });
    next.querySelectorAll(".ops-scroll[aria-labelledby]").forEach((s) => {
      const left = kept.scroll.get(s.getAttribute("aria-labelledby"));
      if (left) s.scrollLeft = left;
    });
    if (kept.focus) {
      const target = next.querySelector(kept.focus);
      if (target) target.focus({ preventScroll: true });
    }
  }

  async function refresh() {
    if (paused || stopped) return;
    if (document.hidden || selecting()) return schedule(PERIOD);
    try {
      const res = await fetch(src, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (res.redirected || res.status === 401 || res.status === 403) {
        stopped = true;
        say("Live updates stopped: your session has ended. Reload the page to sign in again.");
        return;
      }
      if (!res.ok) throw new Error("status " + res.status);
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.getElementById("ops-live");
      if (!fresh) throw new Error("no console in the answer");
      if (paused) return;
      const kept = remember();
      const next = document.adoptNode(fresh);
      live.replaceWith(next);
      live = next;
      restore(next, kept);
      failures = 0;
      say("");
      schedule(PERIOD);
    } catch (_) {
      failures += 1;
      say("Live updates are failing; retrying.");
      schedule(Math.min(PERIOD * 2 ** failures, 30000));
    }
  }

  button.addEventListener("click", () => {
    paused = !paused;
    button.setAttribute("aria-pressed", String(paused));
    button.textContent = paused ? "Resume live updates" : "Pause live updates";
    say(paused ? "Live updates paused." : "");
    if (paused) clearTimeout(timer);
    else schedule(0);
  });

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) schedule(0);
  });

  schedule(PERIOD);
})();
