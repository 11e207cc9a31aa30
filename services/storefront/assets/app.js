// Bazaar storefront: progressive enhancement only. Every flow works without
// this file; with it, the notification bell counts up live and an order's
// page follows its checkout without a reload.
//
// `/live` relays the user's notifications (event `notification`, data
// `{id, kind, title, link}`). The bell carries the id of the newest
// notification the page was rendered with (`data-after`), so the stream
// resumes right after it and nothing in between is lost.
"use strict";
(function () {
  const bellLink = document.querySelector("[data-live=bell]");
  const bell = document.querySelector("[data-unread]");
  const order = document.querySelector("[data-order-live]");

  // ---- an order's status ----
  let refreshing = false;
  let again = false;
  function refreshOrder() {
    if (!order) return;
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    fetch(order.dataset.orderLive, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
      cache: "no-store",
    })
      .then((r) => (r.ok ? r.text() : null))
      .then((html) => {
        if (html === null) return;
        // Same-origin markup rendered (and escaped) by the storefront.
        order.innerHTML = html;
        const status = order.querySelector("[data-status]");
        if (status) order.dataset.status = status.dataset.status;
      })
      .catch(() => {})
      .finally(() => {
        refreshing = false;
        if (again) {
          again = false;
          refreshOrder();
        }
      });
  }
  if (order) {
    // The fallback when the stream is down: poll while it is pending.
    const poll = window.setInterval(() => {
      if (order.dataset.status !== "pending") {
        window.clearInterval(poll);
        return;
      }
      refreshOrder();
    }, 2000);
  }

  // ---- the live stream ----
  if (!bell || !window.EventSource) return;
  const after = bellLink && bellLink.dataset.after;
  const live = new EventSource(after ? "/live?after=" + encodeURIComponent(after) : "/live");
  live.addEventListener("open", () => {
    // Closes the race of a change made before the stream was connected.
    if (order && order.dataset.status === "pending") refreshOrder();
  });
  live.addEventListener("notification", (event) => {
    bell.textContent = String((parseInt(bell.textContent, 10) || 0) + 1);
    bell.classList.add("bump");
    window.setTimeout(() => bell.classList.remove("bump"), 600);
    let data = null;
    try {
      data = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (order && data && data.link === order.dataset.orderLink) refreshOrder();
  });
  window.addEventListener("pagehide", () => live.close());
})();
