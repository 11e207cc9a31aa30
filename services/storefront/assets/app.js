// Bazaar storefront: progressive enhancement only. Every flow works without
// this file; with it, the notification bell counts up live.
"use strict";
(function () {
  const bell = document.querySelector("[data-unread]");
  if (!bell || !window.EventSource) return;
  const live = new EventSource("/live");
  live.addEventListener("notification", () => {
    bell.textContent = String((parseInt(bell.textContent, 10) || 0) + 1);
  });
})();
